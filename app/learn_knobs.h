#pragma once
// LearnKnobs: the advanced learning options of `latmix learn` as one collapsible group (optimizer ...
// teacher cache, validation, GPTQ in the loop, memory), each empty or "default" unless set, read into
// and set from the engine's request (latmix/api/learn.h). The Learn tab shows one method's defaults
// in it; the Compare tab's methods page shares one for every learned method. Each control carries
// the option's name as its objectName and quotes `latmix learn --help` in its tooltip.

#include <QGroupBox>
#include <QList>
#include <QString>

#include <optional>

#include "latmix/api/learn.h"
#include "latmix/learn.h"

class QComboBox;
class QLineEdit;

namespace latmix::studio {

class LearnKnobs : public QGroupBox {
  Q_OBJECT

 public:
  /// `default_text`: what an empty control means ("the method's default", "each method's default").
  LearnKnobs(const QString& default_text, QWidget* parent = nullptr);

  /// Shows one method's defaults as the placeholders and "default (...)" items.
  void showDefaults(const LearnSettings& defaults);
  /// The options set into `request` (those left empty: unset).
  void read(api::LearnRequest& request) const;
  /// Sets every control from `request` (unset: empty / default).
  void write(const api::LearnRequest& request);

 Q_SIGNALS:
  void changed();

 private:
  QString default_text_;
  QComboBox *optimizer_, *schedule_, *init_, *param_, *affine_bias_, *rotation_map_, *mode_, *loss_, *recompute_,
      *teacher_cache_, *deployed_check_;
  QLineEdit *lambda_, *warmup_, *grad_clip_, *momentum_, *weight_decay_, *micro_batch_, *loss_chunk_, *kept_layers_,
      *validation_, *eval_every_, *patience_, *gptq_refresh_;
};

// Controls of the learning forms (the Learn tab's and the Compare tab's), as LearnKnobs builds them.
/// A field for a real number (C locale, scientific notation allowed); empty: unset.
QLineEdit* number_field(QWidget* parent);
/// A field for a whole number >= `minimum`; empty: unset.
QLineEdit* count_field(QWidget* parent, int minimum);
std::optional<double> number_of(const QLineEdit* field);
std::optional<int64_t> count_of(const QLineEdit* field);
void set_number(QLineEdit* field, const std::optional<double>& value);
void set_count(QLineEdit* field, const std::optional<int64_t>& value);
/// "--name: " and the help text of `latmix learn --help` (one source: latmix/api/learn.h).
QString cli_tip(const char* name);

}  // namespace latmix::studio
