#pragma once
// The first-run tour (issue #10): a few steps, each a bubble pointing at one part of the window
// (the rest dimmed), with Back / Next / Skip. Shown once on the first start (the QSettings flag
// "tour/done"), and again from Help > Show tour. Esc or Skip dismisses it.

#include <QPointer>
#include <QString>
#include <QWidget>

#include <functional>
#include <vector>

class QLabel;
class QPushButton;
class QFrame;

namespace latmix::studio {

struct TourStep {
  QString title;
  QString text;
  /// The rectangle to point at, in the window's coordinates (an empty rect: the bubble is centred).
  std::function<QRect()> target;
  /// Run when the step is shown (e.g. switch to the tab it talks about); may be empty.
  std::function<void()> enter;
};

class Tour : public QWidget {
  Q_OBJECT

 public:
  /// An overlay over `window` (its child, resized with it). Hidden until start().
  Tour(QWidget* window, std::vector<TourStep> steps);

  /// Shows step 0.
  void start();
  void next();
  void back();
  /// Hides the tour and marks it seen.
  void dismiss();
  int step() const { return step_; }
  int stepCount() const { return static_cast<int>(steps_.size()); }
  QPushButton* nextButton() const { return next_; }
  QPushButton* skipButton() const { return skip_; }

  /// The QSettings flag: whether the tour was seen (finished or skipped).
  static bool seen();
  static void setSeen(bool seen);

 Q_SIGNALS:
  /// The tour ended: `completed` when the last step's Done was pressed, false when skipped.
  void ended(bool completed);

 protected:
  void paintEvent(QPaintEvent* e) override;
  void keyPressEvent(QKeyEvent* e) override;
  bool eventFilter(QObject* watched, QEvent* e) override;
  void mousePressEvent(QMouseEvent* e) override;

 private:
  void show_step();
  void place_bubble();
  void finish(bool completed);

  std::vector<TourStep> steps_;
  int step_ = -1;
  QRect target_;
  QFrame* bubble_ = nullptr;
  QLabel* title_ = nullptr;
  QLabel* text_ = nullptr;
  QLabel* counter_ = nullptr;
  QPushButton* back_ = nullptr;
  QPushButton* next_ = nullptr;
  QPushButton* skip_ = nullptr;
};

}  // namespace latmix::studio
