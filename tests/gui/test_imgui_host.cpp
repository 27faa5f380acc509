// ImGuiHost under a real X server (xvfb-run; QOpenGLWidget needs GL): a press and release that
// both arrive between two frames still click (ImGui 1.86 samples io.MouseDown once a frame, so the
// host holds the release back until a frame has seen the press), and the heatmap's hover crosshair
// sits on the cell under the mouse. Frames are rendered on demand with grabFramebuffer(); events
// are sent synchronously, so nothing renders between a press and its release.
#include <QApplication>
#include <QMouseEvent>
#include <QtTest>

#include <imgui.h>

#include "heatmap_view.h"
#include "imgui_host.h"

using latmix::widgets::HeatmapData;
using latmix::widgets::HeatmapView;
using latmix::widgets::ImGuiHost;

namespace {

void send_mouse(QWidget& w, QEvent::Type type, QPointF at) {
  const Qt::MouseButton button = type == QEvent::MouseMove ? Qt::NoButton : Qt::LeftButton;
  const Qt::MouseButtons held = type == QEvent::MouseButtonPress ? Qt::LeftButton : Qt::NoButton;
  QMouseEvent e(type, at, w.mapToGlobal(at), button, held, Qt::NoModifier);
  QCoreApplication::sendEvent(&w, &e);
}

void frame(ImGuiHost& host) { (void)host.grabFramebuffer(); }

}  // namespace

class ImGuiHostTest : public QObject {
  Q_OBJECT

 private Q_SLOTS:
  void initTestCase() {
    if (!ImGuiHost::openGLAvailable()) QSKIP("no OpenGL 3 context here (the test runs under xvfb-run)");
  }

  void quickClickBetweenTwoFramesRegisters() {
    ImGuiHost host;
    int clicks = 0;
    host.setDrawFunction([&] {
      ImGui::SetCursorPos(ImVec2(20, 20));
      if (ImGui::Button("Go", ImVec2(100, 40))) ++clicks;
    });
    host.resize(400, 300);
    host.show();
    QVERIFY(QTest::qWaitForWindowExposed(&host));
    const QPointF on_button(70, 40);
    send_mouse(host, QEvent::MouseMove, on_button);
    frame(host);
    frame(host);
    QCOMPARE(clicks, 0);
    // Press and release with no frame between them.
    send_mouse(host, QEvent::MouseButtonPress, on_button);
    send_mouse(host, QEvent::MouseButtonRelease, on_button);
    frame(host);  // sees the press
    frame(host);  // sees the release: the button fires
    QCOMPARE(clicks, 1);
    frame(host);
    frame(host);
    QCOMPARE(clicks, 1);  // once, and the button is not left held
    // An ordinary click with frames between press and release still clicks once.
    send_mouse(host, QEvent::MouseButtonPress, on_button);
    frame(host);
    send_mouse(host, QEvent::MouseButtonRelease, on_button);
    frame(host);
    QCOMPARE(clicks, 2);
    // A quick click off the button does nothing.
    send_mouse(host, QEvent::MouseButtonPress, QPointF(300, 250));
    send_mouse(host, QEvent::MouseButtonRelease, QPointF(300, 250));
    frame(host);
    frame(host);
    QCOMPARE(clicks, 2);
  }

  void heatmapCrosshairFollowsTheMouseAndAQuickClickSelects() {
    ImGuiHost host;
    HeatmapView view;
    HeatmapData data;
    data.title = "test map";
    data.value_label = "v";
    data.row_labels = {"layer 0", "layer 1", "layer 2", "layer 3"};
    for (int c = 0; c < 8; ++c) data.col_labels << QString::number(c);
    for (int i = 0; i < 32; ++i) data.values.push_back(static_cast<float>(i));
    view.setData(data);
    std::optional<std::pair<int, int>> clicked;
    host.setDrawFunction([&] {
      if (auto c = view.draw()) clicked = c;
    });
    host.resize(640, 400);
    host.show();
    QVERIFY(QTest::qWaitForWindowExposed(&host));
    frame(host);
    QVERIFY(!view.hovered());
    QVERIFY(!view.crosshair());
    std::optional<std::pair<int, int>> first;
    for (const QPointF p : {QPointF(250, 110), QPointF(480, 190)}) {
      send_mouse(host, QEvent::MouseMove, p);
      frame(host);
      QVERIFY2(view.hovered().has_value(), qPrintable(QString("no cell under (%1, %2)").arg(p.x()).arg(p.y())));
      QVERIFY(view.crosshair().has_value());
      const HeatmapView::Crosshair x = *view.crosshair();
      QVERIFY(x.cell.contains(p));
      QVERIFY(x.row.contains(p));
      QVERIFY(x.column.contains(p));
      QVERIFY(x.row.width() > 7 * x.cell.width());      // the whole row of 8 cells
      QVERIFY(x.column.height() > 3 * x.cell.height());  // the whole column of 4
      QCOMPARE(x.row.top(), x.cell.top());
      QCOMPARE(x.column.left(), x.cell.left());
      if (!first) first = view.hovered();
    }
    QVERIFY(view.hovered() != first);  // the two points are on different cells
    // A quick click on the hovered cell selects it.
    const auto cell = view.hovered();
    send_mouse(host, QEvent::MouseButtonPress, QPointF(480, 190));
    send_mouse(host, QEvent::MouseButtonRelease, QPointF(480, 190));
    frame(host);
    frame(host);
    QVERIFY(clicked.has_value());
    QCOMPARE(*clicked, *cell);
    // Leaving the widget removes the crosshair.
    QEvent leave(QEvent::Leave);
    QCoreApplication::sendEvent(&host, &leave);
    frame(host);
    QVERIFY(!view.hovered());
    QVERIFY(!view.crosshair());
  }
};

QTEST_MAIN(ImGuiHostTest)
#include "test_imgui_host.moc"
