#pragma once
// ImGuiHost: a QOpenGLWidget that hosts Dear ImGui 1.86 (its OpenGL3 renderer) with Qt input
// mapped onto ImGui's IO. Each host has its own ImGui context. The view's content is a draw
// callback; the widget repaints on input, on request, and continuously while animating.

#include <QElapsedTimer>
#include <QOpenGLWidget>
#include <QTimer>

#include <functional>

struct ImGuiContext;

namespace latmix::widgets {

class ImGuiHost : public QOpenGLWidget {
  Q_OBJECT

 public:
  explicit ImGuiHost(QWidget* parent = nullptr);
  ~ImGuiHost() override;

  /// The content, called inside an ImGui frame with one full-window ImGui window begun.
  void setDrawFunction(std::function<void()> draw);
  /// Repaint continuously at ~30 Hz (e.g. while a job runs), or only on input/requests.
  void setAnimating(bool on);

  /// Whether an OpenGL 3 context can be created here at all (checked once, before constructing
  /// an ImGuiHost; without it the studio shows a plain message instead).
  static bool openGLAvailable();

 protected:
  void initializeGL() override;
  void paintGL() override;
  void mouseMoveEvent(QMouseEvent* e) override;
  void mousePressEvent(QMouseEvent* e) override;
  void mouseReleaseEvent(QMouseEvent* e) override;
  void wheelEvent(QWheelEvent* e) override;
  void keyPressEvent(QKeyEvent* e) override;
  void keyReleaseEvent(QKeyEvent* e) override;
  void leaveEvent(QEvent* e) override;

 private:
  void makeCurrentContext() const;
  void setKey(QKeyEvent* e, bool down);

  ImGuiContext* context_ = nullptr;
  bool gl_ready_ = false;
  // A press and its release between two frames would never be seen by ImGui (a quick click is
  // lost): the release waits for the frame after the one that saw the press.
  bool press_unseen_[3] = {false, false, false};
  bool release_pending_[3] = {false, false, false};
  std::function<void()> draw_;
  QTimer animation_;
  QElapsedTimer clock_;
};

}  // namespace latmix::widgets
