#include "heatmap_view.h"

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

std::optional<std::pair<int, int>> HeatmapView::draw() {
  const int rows = data_.row_labels.size(), cols = data_.col_labels.size();
  if (rows == 0 || cols == 0 || data_.values.size() != static_cast<size_t>(rows * cols)) {
    ImGui::TextUnformatted("No data.");
    return std::nullopt;
  }
  ImGui::TextUnformatted(data_.title.toUtf8().constData());
  const float label_w = 70, bar_w = 80;
  const ImVec2 origin = ImGui::GetCursorScreenPos();
  const ImVec2 avail = ImGui::GetContentRegionAvail();
  const float cell_w = std::max(4.0f, (avail.x - label_w - bar_w) / static_cast<float>(cols));
  const float cell_h = std::clamp((avail.y - 40) / static_cast<float>(rows), 10.0f, 40.0f);
  ImDrawList* dl = ImGui::GetWindowDrawList();
  const ImVec2 mouse = ImGui::GetIO().MousePos;
  std::optional<std::pair<int, int>> clicked;
  hovered_.reset();
  for (int r = 0; r < rows; ++r) {
    const float y = origin.y + static_cast<float>(r) * cell_h;
    dl->AddText(ImVec2(origin.x, y + cell_h / 2 - 7), IM_COL32(220, 220, 220, 255),
                data_.row_labels[r].toUtf8().constData());
    for (int c = 0; c < cols; ++c) {
      const float v = data_.values[static_cast<size_t>(r * cols + c)];
      const float x = origin.x + label_w + static_cast<float>(c) * cell_w;
      const float t = ((data_.log_scale ? std::log10(std::max(v, 1e-12f)) : v) - lo_) / (hi_ - lo_);
      const ImVec2 a(x, y), b(x + cell_w - 1, y + cell_h - 1);
      dl->AddRectFilled(a, b, data_.diverging ? diverging_colour(t) : heat_colour(t));
      if (mouse.x >= a.x && mouse.x < b.x && mouse.y >= a.y && mouse.y < b.y) {
        dl->AddRect(a, b, IM_COL32(255, 255, 255, 255), 0, 0, 2);
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
  ImGui::Dummy(ImVec2(avail.x, bh + 24));
  return clicked;
}

}  // namespace latmix::widgets
