#include "studio_context.h"

#include <utility>

#include "engine_link.h"
#include "learn_controller.h"
#include "model_session.h"
#include "settings_dialog.h"

namespace latmix::studio {

StudioContext::StudioContext(EngineHost* host, ModelSession* session, QObject* parent)
    : QObject(parent),
      host_(host),
      session_(session),
      link_(new EngineLink(host, this)),
      learn_(new LearnController(host, session, this)) {
  // A plan belongs to the model it was learned on: another model's plans go before anyone sees it.
  learn_->setEngineLink(link_);
  connect(session_, &ModelSession::opened, this, &StudioContext::clearPlans);
}

StudioContext::~StudioContext() = default;

api::StatisticsRequest StudioContext::statisticsRequest() const {
  api::StatisticsRequest r = statistics_;
  r.model = session_->summary().path.toStdString();
  r.device = StudioSettings::load().device.toStdString();
  return r;
}

void StudioContext::setStatisticsRequest(const api::StatisticsRequest& request) {
  statistics_ = request;
  Q_EMIT statisticsRequestChanged();
}

void StudioContext::requestCalibration() {
  Q_EMIT calibrationRequested();
}

void StudioContext::showStatistics(std::shared_ptr<ActivationStats> stats, std::shared_ptr<Model> source,
                                   const api::StatisticsRequest& request) {
  Q_EMIT statisticsComputed(stats, source, request);
}

void StudioContext::addPlan(const QString& label, const QString& prefix) {
  bool found = false;
  for (StudioPlan& p : plans_) {
    if (p.label != label) continue;
    p.prefix = prefix;
    found = true;
  }
  if (!found) plans_.push_back({label, prefix});
  Q_EMIT planAdded(label, prefix);
}

void StudioContext::clearPlans() {
  plans_.clear();
  Q_EMIT plansCleared();
}

LearnRequest StudioContext::learnRequest() const {
  LearnRequest r = learn_request_;
  r.model = session_->summary().path.toStdString();
  r.device = StudioSettings::load().device.toStdString();
  return r;
}

void StudioContext::setLearnRequest(const LearnRequest& request) {
  learn_request_ = request;
  Q_EMIT learnRequestChanged();
}

void StudioContext::openBlock(const BlockTarget& target) {
  Q_EMIT blockOpened(target);
}

}  // namespace latmix::studio
