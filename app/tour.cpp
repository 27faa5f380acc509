#include "tour.h"

#include <QEvent>
#include <QFrame>
#include <QHBoxLayout>
#include <QKeyEvent>
#include <QLabel>
#include <QMouseEvent>
#include <QPainter>
#include <QPainterPath>
#include <QPushButton>
#include <QSettings>
#include <QVBoxLayout>

#include <algorithm>

namespace latmix::studio {

namespace {
constexpr int kMargin = 6;     // around the highlighted target
constexpr int kGap = 18;       // between the target and the bubble (the pointer lives there)
constexpr int kBubbleWidth = 380;
}  // namespace

Tour::Tour(QWidget* window, std::vector<TourStep> steps) : QWidget(window), steps_(std::move(steps)) {
  setObjectName("tour");
  setFocusPolicy(Qt::StrongFocus);
  bubble_ = new QFrame(this);
  bubble_->setObjectName("tour-bubble");
  // Fixed colours: the bubble must read the same on the light and the dark palette.
  bubble_->setStyleSheet(
      "QFrame#tour-bubble { background: #fffbe6; border: 2px solid #e67e22; border-radius: 8px; }"
      "QLabel { color: #222; background: transparent; border: none; }"
      "QPushButton { padding: 4px 12px; }");
  bubble_->setFixedWidth(kBubbleWidth);
  auto* layout = new QVBoxLayout(bubble_);
  title_ = new QLabel(bubble_);
  QFont f = title_->font();
  f.setBold(true);
  f.setPointSizeF(f.pointSizeF() * 1.15);
  title_->setFont(f);
  text_ = new QLabel(bubble_);
  text_->setWordWrap(true);
  text_->setTextFormat(Qt::RichText);
  counter_ = new QLabel(bubble_);
  back_ = new QPushButton("Back", bubble_);
  next_ = new QPushButton("Next", bubble_);
  skip_ = new QPushButton("Skip tour", bubble_);
  next_->setDefault(true);
  skip_->setToolTip("Close the tour (Esc). Help > Show tour shows it again.");
  auto* buttons = new QHBoxLayout();
  buttons->addWidget(counter_);
  buttons->addStretch(1);
  buttons->addWidget(skip_);
  buttons->addWidget(back_);
  buttons->addWidget(next_);
  layout->addWidget(title_);
  layout->addWidget(text_);
  layout->addLayout(buttons);
  connect(next_, &QPushButton::clicked, this, &Tour::next);
  connect(back_, &QPushButton::clicked, this, &Tour::back);
  connect(skip_, &QPushButton::clicked, this, &Tour::dismiss);
  window->installEventFilter(this);
  hide();
}

bool Tour::seen() { return QSettings().value("tour/done", false).toBool(); }

void Tour::setSeen(bool seen) { QSettings().setValue("tour/done", seen); }

void Tour::start() {
  if (steps_.empty()) return;
  setGeometry(parentWidget()->rect());
  step_ = 0;
  show();
  raise();
  show_step();
  setFocus();
}

void Tour::next() {
  if (step_ + 1 >= stepCount()) {
    finish(true);
    return;
  }
  ++step_;
  show_step();
}

void Tour::back() {
  if (step_ <= 0) return;
  --step_;
  show_step();
}

void Tour::dismiss() { finish(false); }

void Tour::finish(bool completed) {
  if (!isVisible()) return;
  hide();
  step_ = -1;
  setSeen(true);
  Q_EMIT ended(completed);
}

void Tour::show_step() {
  const TourStep& s = steps_[static_cast<size_t>(step_)];
  if (s.enter) s.enter();
  title_->setText(s.title);
  text_->setText(s.text);
  counter_->setText(QString("%1 / %2").arg(step_ + 1).arg(stepCount()));
  back_->setEnabled(step_ > 0);
  next_->setText(step_ + 1 == stepCount() ? "Done" : "Next");
  place_bubble();
  update();
}

void Tour::place_bubble() {
  if (step_ < 0) return;
  const TourStep& s = steps_[static_cast<size_t>(step_)];
  target_ = s.target ? s.target() : QRect();
  bubble_->adjustSize();
  const QSize b = bubble_->size();
  const QRect area = rect().adjusted(8, 8, -8, -8);
  QPoint at;
  if (target_.isEmpty()) {
    at = area.center() - QPoint(b.width() / 2, b.height() / 2);
  } else if (target_.bottom() + kGap + b.height() <= area.bottom()) {  // below
    at = QPoint(target_.center().x() - b.width() / 2, target_.bottom() + kMargin + kGap);
  } else if (target_.top() - kGap - b.height() >= area.top()) {  // above
    at = QPoint(target_.center().x() - b.width() / 2, target_.top() - kMargin - kGap - b.height());
  } else {  // beside
    at = QPoint(target_.left() - kMargin - kGap - b.width(), target_.center().y() - b.height() / 2);
    if (at.x() < area.left()) at.setX(target_.right() + kMargin + kGap);
  }
  at.setX(std::clamp(at.x(), area.left(), std::max(area.left(), area.right() - b.width())));
  at.setY(std::clamp(at.y(), area.top(), std::max(area.top(), area.bottom() - b.height())));
  bubble_->move(at);
}

void Tour::paintEvent(QPaintEvent*) {
  QPainter p(this);
  p.setRenderHint(QPainter::Antialiasing);
  QPainterPath dim;
  dim.addRect(rect());
  const QRect hole = target_.adjusted(-kMargin, -kMargin, kMargin, kMargin);
  if (!target_.isEmpty()) {
    QPainterPath cut;
    cut.addRoundedRect(hole, 6, 6);
    dim = dim.subtracted(cut);
  }
  p.fillPath(dim, QColor(0, 0, 0, 120));
  if (target_.isEmpty()) return;
  p.setPen(QPen(QColor("#e67e22"), 3));
  p.setBrush(Qt::NoBrush);
  p.drawRoundedRect(hole, 6, 6);
  // A pointer from the bubble's nearest edge to the target.
  const QRect b = bubble_->geometry();
  const QPointF tip(std::clamp(target_.center().x(), hole.left() + 8, hole.right() - 8),
                    b.top() > hole.bottom() ? hole.bottom() + 2 : b.bottom() < hole.top() ? hole.top() - 2
                                                                                           : target_.center().y());
  const double base_y = b.top() > hole.bottom() ? b.top() + 1 : b.bottom() < hole.top() ? b.bottom() - 1 : tip.y();
  const double base_x = std::clamp(tip.x(), b.left() + 20.0, b.right() - 20.0);
  QPainterPath arrow;
  arrow.moveTo(tip);
  arrow.lineTo(base_x - 10, base_y);
  arrow.lineTo(base_x + 10, base_y);
  arrow.closeSubpath();
  p.setPen(QPen(QColor("#e67e22"), 2));
  p.setBrush(QColor("#fffbe6"));
  p.drawPath(arrow);
}

void Tour::keyPressEvent(QKeyEvent* e) {
  if (e->key() == Qt::Key_Escape) {
    dismiss();
  } else if (e->key() == Qt::Key_Right || e->key() == Qt::Key_Return || e->key() == Qt::Key_Enter) {
    next();
  } else if (e->key() == Qt::Key_Left) {
    back();
  } else {
    QWidget::keyPressEvent(e);
  }
}

void Tour::mousePressEvent(QMouseEvent* e) { e->accept(); }  // the window waits while the tour shows

bool Tour::eventFilter(QObject* watched, QEvent* e) {
  if (watched == parentWidget() && e->type() == QEvent::Resize && isVisible()) {
    setGeometry(parentWidget()->rect());
    place_bubble();
  }
  return QWidget::eventFilter(watched, e);
}

}  // namespace latmix::studio
