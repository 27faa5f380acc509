#include "heatmap_view.h"

#include <QFont>
#include <QFontMetrics>
#include <QPainter>

#include <imgui.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace latmix::widgets {

unsigned int heat_colour(float t) {
  if (std::isnan(t)) t = 0;
  t = std::clamp(t, 0.0f, 1.0f);
  // three-stop ramp: (20, 30, 90) -> (30, 150, 150) -> (250, 230, 60)
  const float stops[3][3] = {{20, 30, 90}, {30, 150, 150}, {250, 230, 60}};
  const int i = t < 0.5f ? 0 : 1;
  const float u = t < 0.5f ? t * 2 : (t - 0.5f) * 2;
  auto mix = [&](int c) { return static_cast<int>(stops[i][c] + (stops[i + 1][c] - stops[i][c]) * u); };
  return IM_COL32(mix(0), mix(1), mix(2), 255);
}

unsigned int diverging_colour(float t) {
  if (std::isnan(t)) t = 0.5f;
  t = std::clamp(t, 0.0f, 1.0f);
  const float stops[3][3] = {{40, 90, 200}, {245, 245, 245}, {200, 40, 40}};
  const int i = t < 0.5f ? 0 : 1;
  const float u = t < 0.5f ? t * 2 : (t - 0.5f) * 2;
  auto mix = [&](int c) { return static_cast<int>(stops[i][c] + (stops[i + 1][c] - stops[i][c]) * u); };
  return IM_COL32(mix(0), mix(1), mix(2), 255);
}

void HeatmapView::setData(HeatmapData data) {
  data_ = std::move(data);
  lo_ = 0;
  hi_ = 1;
  if (data_.values.empty()) return;
  float mn = std::numeric_limits<float>::infinity(), mx = -mn;
  for (float v : data_.values) {
    if (!std::isfinite(v)) continue;  // e.g. +inf SQNR of an exact block: drawn at the top
    mn = std::min(mn, v);
    mx = std::max(mx, v);
  }
  if (!std::isfinite(mn)) mn = mx = 0;
  if (data_.fixed_range) {
    mn = data_.range_lo;
    mx = data_.range_hi;
  }
  if (data_.diverging) {  // symmetric about zero: white is "no change"
    const float m = std::max({std::abs(mn), std::abs(mx), 1e-12f});
    mn = -m;
    mx = m;
  }
  lo_ = data_.log_scale ? std::log10(std::max(mn, 1e-12f)) : mn;
  hi_ = data_.log_scale ? std::log10(std::max(mx, 1e-12f)) : mx;
  if (hi_ <= lo_) hi_ = lo_ + 1;
}

unsigned int HeatmapView::colourOf(float v) const {
  const float t = ((data_.log_scale ? std::log10(std::max(v, 1e-12f)) : v) - lo_) / (hi_ - lo_);
  return data_.diverging ? diverging_colour(t) : heat_colour(t);
}

namespace {

QColor to_qcolor(unsigned int c) {
  return QColor(static_cast<int>(c & 0xff), static_cast<int>((c >> 8) & 0xff), static_cast<int>((c >> 16) & 0xff));
}

}  // namespace

QImage HeatmapView::image() const {
  const int rows = static_cast<int>(data_.row_labels.size()), cols = static_cast<int>(data_.col_labels.size());
  if (rows == 0 || cols == 0 || data_.values.size() != static_cast<size_t>(rows * cols)) return {};
  const int grid_w = cols * kImageCellW, grid_h = rows * kImageCellH, bar_x = kImageLeft + grid_w + 16;
  const QString title = data_.title;
  const int title_w = QFontMetrics(QFont()).horizontalAdvance(title) + 16;  // the title is never clipped
  QImage img(std::max(bar_x + 90, title_w), kImageTop + grid_h + 28, QImage::Format_RGB32);
  img.fill(QColor(30, 30, 34));
  QPainter p(&img);
  p.setPen(QColor(230, 230, 230));
  p.drawText(QRect(8, 4, img.width() - 8, kImageTop - 6), Qt::AlignLeft | Qt::AlignVCenter, title);
  for (int r = 0; r < rows; ++r) {
    const int y = kImageTop + r * kImageCellH;
    p.setPen(QColor(220, 220, 220));
    p.drawText(QRect(4, y, kImageLeft - 8, kImageCellH), Qt::AlignLeft | Qt::AlignVCenter, data_.row_labels[r]);
    for (int c = 0; c < cols; ++c) {
      p.fillRect(kImageLeft + c * kImageCellW, y, kImageCellW, kImageCellH,
                 to_qcolor(colourOf(data_.values[static_cast<size_t>(r * cols + c)])));
    }
  }
  const int label_every = std::max(1, static_cast<int>(std::ceil(40.0 / kImageCellW)));
  p.setPen(QColor(200, 200, 200));
  for (int c = 0; c < cols; c += label_every) {
    p.drawText(QPoint(kImageLeft + c * kImageCellW, kImageTop + grid_h + 16), data_.col_labels[c]);
  }
  for (int i = 0; i < 32; ++i) {  // the colour bar, top = the range's top
    const float t = 1.0f - static_cast<float>(i) / 32.0f;
    const int y0 = kImageTop + grid_h * i / 32, y1 = kImageTop + grid_h * (i + 1) / 32;
    p.fillRect(bar_x, y0, 14, y1 - y0, to_qcolor(data_.diverging ? diverging_colour(t) : heat_colour(t)));
  }
  auto number = [this](float x) {
    return QString::number(static_cast<double>(data_.log_scale ? std::pow(10.0f, x) : x), 'g', 3);
  };
  p.drawText(QPoint(bar_x + 18, kImageTop + 10), number(hi_));
  p.drawText(QPoint(bar_x + 18, kImageTop + grid_h), number(lo_));
  if (data_.diverging) p.drawText(QPoint(bar_x + 18, kImageTop + grid_h / 2 + 5), "0");
  return img;
}

void HeatmapView::setZoom(int zoom) { zoom_ = std::clamp(zoom, 1, 8); }

std::optional<std::pair<int, int>> HeatmapView::draw() {
  const int rows = data_.row_labels.size(), cols = data_.col_labels.size();
  if (rows == 0 || cols == 0 || data_.values.size() != static_cast<size_t>(rows * cols)) {
    ImGui::TextUnformatted("No data.");
    return std::nullopt;
  }
  ImGui::TextUnformatted(data_.title.toUtf8().constData());
  if (ImGui::SmallButton("-")) setZoom(zoom_ / 2);
  ImGui::SameLine();
  if (ImGui::SmallButton("+")) setZoom(zoom_ * 2);
  ImGui::SameLine();
  if (ImGui::SmallButton("fit")) setZoom(1);
  ImGui::SameLine();
  ImGui::Text("zoom %dx (Ctrl+wheel)", zoom_);
  const ImGuiIO& io = ImGui::GetIO();
  const float label_w = 70, bar_w = 80;
  const ImVec2 avail = ImGui::GetContentRegionAvail();
  // Fitted to the window at zoom 1; the child scrolls both ways when zoomed (Ctrl+wheel zooms there
  // instead of scrolling).
  const float z = static_cast<float>(zoom_);
  const float cell_w = z * std::max(4.0f, (avail.x - 1 - label_w - bar_w) / static_cast<float>(cols));
  const float cell_h = z * std::clamp((avail.y - 40) / static_cast<float>(rows), 10.0f, 40.0f);
  ImGui::BeginChild("##heatmap", avail, false,
                    static_cast<int>(ImGuiWindowFlags_HorizontalScrollbar) |
                        (io.KeyCtrl ? static_cast<int>(ImGuiWindowFlags_NoScrollWithMouse) : 0));
  if (io.KeyCtrl && io.MouseWheel != 0 && ImGui::IsWindowHovered()) setZoom(io.MouseWheel > 0 ? zoom_ * 2 : zoom_ / 2);
  const ImVec2 origin = ImGui::GetCursorScreenPos();
  ImDrawList* dl = ImGui::GetWindowDrawList();
  const ImVec2 mouse = io.MousePos;
  const bool inside = ImGui::IsWindowHovered();  // not over the zoom buttons or another window
  std::optional<std::pair<int, int>> clicked;
  hovered_.reset();
  crosshair_.reset();
  for (int r = 0; r < rows; ++r) {
    const float y = origin.y + static_cast<float>(r) * cell_h;
    dl->AddText(ImVec2(origin.x, y + cell_h / 2 - 7), IM_COL32(220, 220, 220, 255),
                data_.row_labels[r].toUtf8().constData());
    for (int c = 0; c < cols; ++c) {
      const float v = data_.values[static_cast<size_t>(r * cols + c)];
      const float x = origin.x + label_w + static_cast<float>(c) * cell_w;
      const ImVec2 a(x, y), b(x + cell_w - 1, y + cell_h - 1);
      dl->AddRectFilled(a, b, colourOf(v));
      if (inside && mouse.x >= a.x && mouse.x < b.x && mouse.y >= a.y && mouse.y < b.y) {
        hovered_ = std::make_pair(r, c);
        ImGui::BeginTooltip();
        ImGui::Text("%s, %s", data_.row_labels[r].toUtf8().constData(), data_.col_labels[c].toUtf8().constData());
        ImGui::Text("%s: %.4g", data_.value_label.toUtf8().constData(), static_cast<double>(v));
        ImGui::EndTooltip();
        if (ImGui::IsMouseClicked(0)) clicked = std::make_pair(r, c);
      }
    }
  }
  const float grid_bottom = origin.y + static_cast<float>(rows) * cell_h;
  if (hovered_) {  // crosshair: the hovered cell's row and column outlined, the cell itself in white
    const float gx = origin.x + label_w, gr = gx + static_cast<float>(cols) * cell_w;
    const float cx = gx + static_cast<float>(hovered_->second) * cell_w;
    const float ry = origin.y + static_cast<float>(hovered_->first) * cell_h;
    const ImU32 line = IM_COL32(255, 255, 255, 140);
    dl->AddRect(ImVec2(gx, ry), ImVec2(gr - 1, ry + cell_h - 1), line);
    dl->AddRect(ImVec2(cx, origin.y), ImVec2(cx + cell_w - 1, grid_bottom - 1), line);
    dl->AddRect(ImVec2(cx, ry), ImVec2(cx + cell_w - 1, ry + cell_h - 1), IM_COL32(255, 255, 255, 255), 0, 0, 2);
    const auto rect = [](float x0, float y0, float x1, float y1) { return QRectF(x0, y0, x1 - x0, y1 - y0); };
    crosshair_ = Crosshair{rect(gx, ry, gr - 1, ry + cell_h - 1), rect(cx, origin.y, cx + cell_w - 1, grid_bottom - 1),
                           rect(cx, ry, cx + cell_w - 1, ry + cell_h - 1)};
  }
  const int label_every = std::max(1, static_cast<int>(std::ceil(40.0f / cell_w)));
  for (int c = 0; c < cols; c += label_every) {
    dl->AddText(ImVec2(origin.x + label_w + static_cast<float>(c) * cell_w, grid_bottom + 4),
                IM_COL32(200, 200, 200, 255), data_.col_labels[c].toUtf8().constData());
  }
  // colour bar
  const float bx = origin.x + label_w + static_cast<float>(cols) * cell_w + 16;
  const float bh = static_cast<float>(rows) * cell_h;
  for (int i = 0; i < 32; ++i) {
    const float t = 1.0f - static_cast<float>(i) / 32.0f;
    dl->AddRectFilled(ImVec2(bx, origin.y + bh * static_cast<float>(i) / 32),
                      ImVec2(bx + 14, origin.y + bh * static_cast<float>(i + 1) / 32),
                      data_.diverging ? diverging_colour(t) : heat_colour(t));
  }
  if (data_.diverging) dl->AddText(ImVec2(bx + 18, origin.y + bh / 2 - 7), IM_COL32(220, 220, 220, 255), "0");
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.3g", static_cast<double>(data_.log_scale ? std::pow(10.0f, hi_) : hi_));
  dl->AddText(ImVec2(bx + 18, origin.y), IM_COL32(220, 220, 220, 255), buf);
  std::snprintf(buf, sizeof(buf), "%.3g", static_cast<double>(data_.log_scale ? std::pow(10.0f, lo_) : lo_));
  dl->AddText(ImVec2(bx + 18, origin.y + bh - 14), IM_COL32(220, 220, 220, 255), buf);
  // The colour bar and its numbers fit in bar_w: at zoom 1 the content is as wide as the window
  // (no scroll bar).
  ImGui::Dummy(ImVec2(label_w + static_cast<float>(cols) * cell_w + bar_w, bh + 24));
  ImGui::EndChild();
  return clicked;
}

}  // namespace latmix::widgets
