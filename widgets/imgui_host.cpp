#include "imgui_host.h"

#include <QKeyEvent>
#include <QMouseEvent>
#include <QOffscreenSurface>
#include <QOpenGLContext>
#include <QOpenGLFunctions>
#include <QWheelEvent>

#include <imgui.h>
#include <backends/imgui_impl_opengl3.h>

namespace latmix::widgets {

namespace {

int imgui_key_index(int qt_key) {
  switch (qt_key) {
    case Qt::Key_Tab: return ImGuiKey_Tab;
    case Qt::Key_Left: return ImGuiKey_LeftArrow;
    case Qt::Key_Right: return ImGuiKey_RightArrow;
    case Qt::Key_Up: return ImGuiKey_UpArrow;
    case Qt::Key_Down: return ImGuiKey_DownArrow;
    case Qt::Key_PageUp: return ImGuiKey_PageUp;
    case Qt::Key_PageDown: return ImGuiKey_PageDown;
    case Qt::Key_Home: return ImGuiKey_Home;
    case Qt::Key_End: return ImGuiKey_End;
    case Qt::Key_Delete: return ImGuiKey_Delete;
    case Qt::Key_Backspace: return ImGuiKey_Backspace;
    case Qt::Key_Return: return ImGuiKey_Enter;
    case Qt::Key_Enter: return ImGuiKey_KeyPadEnter;
    case Qt::Key_Escape: return ImGuiKey_Escape;
    case Qt::Key_Space: return ImGuiKey_Space;
    case Qt::Key_A: return ImGuiKey_A;
    case Qt::Key_C: return ImGuiKey_C;
    case Qt::Key_V: return ImGuiKey_V;
    case Qt::Key_X: return ImGuiKey_X;
    case Qt::Key_Y: return ImGuiKey_Y;
    case Qt::Key_Z: return ImGuiKey_Z;
    default: return -1;
  }
}

}  // namespace

ImGuiHost::ImGuiHost(QWidget* parent) : QOpenGLWidget(parent) {
  setMouseTracking(true);
  setFocusPolicy(Qt::StrongFocus);
  setMinimumSize(320, 200);
  animation_.setInterval(33);
  connect(&animation_, &QTimer::timeout, this, qOverload<>(&QWidget::update));
  clock_.start();
}

ImGuiHost::~ImGuiHost() {
  if (context_ == nullptr) return;
  makeCurrent();
  ImGui::SetCurrentContext(context_);
  if (gl_ready_) ImGui_ImplOpenGL3_Shutdown();
  ImGui::DestroyContext(context_);
  doneCurrent();
}

bool ImGuiHost::openGLAvailable() {
  static const bool available = [] {
    QOpenGLContext ctx;
    if (!ctx.create()) return false;
    QOffscreenSurface surface;
    surface.setFormat(ctx.format());
    surface.create();
    return surface.isValid() && ctx.makeCurrent(&surface) && ctx.format().majorVersion() >= 3;
  }();
  return available;
}

void ImGuiHost::setDrawFunction(std::function<void()> draw) {
  draw_ = std::move(draw);
  update();
}

void ImGuiHost::setAnimating(bool on) {
  if (on && !animation_.isActive()) animation_.start();
  if (!on) animation_.stop();
}

void ImGuiHost::makeCurrentContext() const { ImGui::SetCurrentContext(context_); }

void ImGuiHost::initializeGL() {
  context_ = ImGui::CreateContext();
  makeCurrentContext();
  ImGuiIO& io = ImGui::GetIO();
  io.IniFilename = nullptr;  // the studio remembers its own layout
  io.KeyMap[ImGuiKey_Tab] = ImGuiKey_Tab;
  for (int k = 0; k < ImGuiKey_COUNT; ++k) io.KeyMap[k] = k;
  ImGui::StyleColorsDark();
  gl_ready_ = ImGui_ImplOpenGL3_Init("#version 130");
}

void ImGuiHost::paintGL() {
  if (!gl_ready_) return;
  makeCurrentContext();
  ImGuiIO& io = ImGui::GetIO();
  const qreal ratio = devicePixelRatioF();
  io.DisplaySize = ImVec2(static_cast<float>(width()), static_cast<float>(height()));
  io.DisplayFramebufferScale = ImVec2(static_cast<float>(ratio), static_cast<float>(ratio));
  const qint64 ns = clock_.nsecsElapsed();
  clock_.restart();
  io.DeltaTime = ns > 0 ? static_cast<float>(ns) * 1e-9f : 1.0f / 60.0f;
  ImGui_ImplOpenGL3_NewFrame();
  ImGui::NewFrame();
  ImGui::SetNextWindowPos(ImVec2(0, 0));
  ImGui::SetNextWindowSize(io.DisplaySize);
  ImGui::Begin("##host", nullptr,
               ImGuiWindowFlags_NoDecoration | ImGuiWindowFlags_NoMove | ImGuiWindowFlags_NoSavedSettings |
                   ImGuiWindowFlags_NoBringToFrontOnFocus);
  if (draw_) draw_();
  ImGui::End();
  ImGui::Render();
  QOpenGLFunctions* gl = context()->functions();
  gl->glViewport(0, 0, static_cast<int>(width() * ratio), static_cast<int>(height() * ratio));
  gl->glClearColor(0.08f, 0.08f, 0.10f, 1.0f);
  gl->glClear(GL_COLOR_BUFFER_BIT);
  ImGui_ImplOpenGL3_RenderDrawData(ImGui::GetDrawData());
  for (int b = 0; b < 3; ++b) {  // this frame saw the presses; releases held back go now
    press_unseen_[b] = false;
    if (release_pending_[b]) {
      release_pending_[b] = false;
      io.MouseDown[b] = false;
      update();
    }
  }
}

namespace {

int button_index(Qt::MouseButton b) {
  return b == Qt::LeftButton ? 0 : b == Qt::RightButton ? 1 : b == Qt::MiddleButton ? 2 : -1;
}

}  // namespace

void ImGuiHost::mouseMoveEvent(QMouseEvent* e) {
  if (context_ == nullptr) return;
  makeCurrentContext();
  ImGui::GetIO().MousePos = ImVec2(static_cast<float>(e->position().x()), static_cast<float>(e->position().y()));
  update();
}

void ImGuiHost::mousePressEvent(QMouseEvent* e) {
  if (context_ == nullptr) return;
  makeCurrentContext();
  // Where the press is (a press may come without a move before it: a touch, a synthetic event).
  ImGui::GetIO().MousePos = ImVec2(static_cast<float>(e->position().x()), static_cast<float>(e->position().y()));
  const int b = button_index(e->button());
  if (b >= 0) {
    ImGui::GetIO().MouseDown[b] = true;
    press_unseen_[b] = true;
    release_pending_[b] = false;
  }
  update();
}

void ImGuiHost::mouseReleaseEvent(QMouseEvent* e) {
  if (context_ == nullptr) return;
  makeCurrentContext();
  const int b = button_index(e->button());
  if (b >= 0) {
    if (press_unseen_[b]) {
      release_pending_[b] = true;  // after the next frame, which sees the press
    } else {
      ImGui::GetIO().MouseDown[b] = false;
    }
  }
  update();
}

void ImGuiHost::wheelEvent(QWheelEvent* e) {
  if (context_ == nullptr) return;
  makeCurrentContext();
  ImGuiIO& io = ImGui::GetIO();
  io.MouseWheel += static_cast<float>(e->angleDelta().y()) / 120.0f;
  io.MouseWheelH += static_cast<float>(e->angleDelta().x()) / 120.0f;
  update();
}

void ImGuiHost::setKey(QKeyEvent* e, bool down) {
  if (context_ == nullptr) return;
  makeCurrentContext();
  ImGuiIO& io = ImGui::GetIO();
  io.KeyCtrl = (e->modifiers() & Qt::ControlModifier) != 0;
  io.KeyShift = (e->modifiers() & Qt::ShiftModifier) != 0;
  io.KeyAlt = (e->modifiers() & Qt::AltModifier) != 0;
  const int k = imgui_key_index(e->key());
  if (k >= 0) io.KeysDown[k] = down;
  if (down) {
    for (QChar c : e->text()) {
      if (c.isPrint()) io.AddInputCharacter(c.unicode());
    }
  }
  update();
}

void ImGuiHost::keyPressEvent(QKeyEvent* e) { setKey(e, true); }
void ImGuiHost::keyReleaseEvent(QKeyEvent* e) { setKey(e, false); }

void ImGuiHost::leaveEvent(QEvent*) {
  if (context_ == nullptr) return;
  makeCurrentContext();
  ImGui::GetIO().MousePos = ImVec2(-FLT_MAX, -FLT_MAX);
  update();
}

}  // namespace latmix::widgets
