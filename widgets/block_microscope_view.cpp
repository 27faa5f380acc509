#include "block_microscope_view.h"

#include <imgui.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace latmix::widgets {

namespace {

const ImU32 kGrid = IM_COL32(110, 110, 130, 255);
const ImU32 kValue = IM_COL32(90, 200, 250, 255);
const ImU32 kQuant = IM_COL32(250, 210, 80, 255);
const ImU32 kClip = IM_COL32(240, 80, 80, 255);

QString scale_text(const MxBlockView& b) {
  if (b.scale > 0 && std::abs(std::log2(b.scale) - std::round(std::log2(b.scale))) < 1e-12) {
    return QString("2^%1").arg(static_cast<int>(std::round(std::log2(b.scale))));
  }
  return QString::number(b.scale, 'g', 5);
}

}  // namespace

void BlockMicroscopeView::draw() {
  if (!has_data_) {
    ImGui::TextWrapped("Pick a capture point, layer, token and block above: the microscope shows how MX "
                       "quantization treats those values.");
    return;
  }
  ImGui::TextUnformatted(data_.where.toUtf8().constData());
  ImGui::Text("transform: %s   format: %s", data_.transform.toUtf8().constData(),
              data_.block.format_details.c_str());
  ImGui::Separator();
  if (!data_.has_after) {
    drawBlock("only", "", data_.block, data_.comparison);
    return;
  }
  if (ImGui::BeginTable("beforeafter", 2, ImGuiTableFlags_SizingStretchSame | ImGuiTableFlags_BordersInnerV)) {
    ImGui::TableNextColumn();
    drawBlock("before", "Before the transform: x", data_.block, data_.comparison);
    ImGui::TableNextColumn();
    const QString heading = "After the transform: T(x) with T = " + data_.transform;
    drawBlock("after", heading.toUtf8().constData(), data_.after, data_.comparison_after);
    ImGui::EndTable();
  }
}

void BlockMicroscopeView::drawBlock(const char* id, const char* heading, const MxBlockView& block,
                                    const std::vector<FormatComparisonRow>& comparison) {
  ImGui::PushID(id);
  if (*heading != '\0') ImGui::TextColored(ImVec4(0.5f, 0.8f, 1.0f, 1.0f), "%s", heading);
  drawExplanation(block);
  drawNumberLine(block);
  drawValueTable("values", block);
  drawComparison("formats", comparison);
  ImGui::PopID();
}

void BlockMicroscopeView::drawExplanation(const MxBlockView& b) {
  const QString s = scale_text(b);
  const double ratio = b.scale > 0 ? b.amax / b.scale : 0;
  // Say what the scale does here: amax lands inside the grid, or above its largest element (then
  // the largest values are clipped, as FLOOR does for many blocks).
  const QString where =
      ratio <= b.element_max
          ? QString("amax / scale = %1 is within the element grid (largest element %2): nothing needs clipping")
                .arg(ratio, 0, 'g', 4)
                .arg(b.element_max, 0, 'g', 4)
          : QString("amax / scale = %1 is above the largest element %2: the values beyond %3 are clipped to it")
                .arg(ratio, 0, 'g', 4)
                .arg(b.element_max, 0, 'g', 4)
                .arg(b.element_max * b.scale, 0, 'g', 4);
  ImGui::TextWrapped(
      "All %d values share one scale. The largest magnitude is amax = %.4g; the %s rule picks the scale %s "
      "(code %d): %s. Each value is divided by the scale, rounded to the nearest grid point, and multiplied back "
      "(clipped: %d here). Block SQNR: %.2f dB, MSE %.3g.",
      static_cast<int>(b.values.size()), b.amax, b.scale_rule.c_str(), s.toUtf8().constData(), b.scale_code,
      where.toUtf8().constData(), b.clipped, b.sqnr_db, b.mse);
}

void BlockMicroscopeView::drawNumberLine(const MxBlockView& b) {
  const ImVec2 origin = ImGui::GetCursorScreenPos();
  const float width = ImGui::GetContentRegionAvail().x - 20;
  const float height = 150;
  double range = std::max(b.amax, b.element_max * b.scale) * 1.05;
  if (range <= 0) range = 1;
  auto x_of = [&](double v) { return origin.x + 10 + static_cast<float>((v + range) / (2 * range)) * width; };
  ImDrawList* dl = ImGui::GetWindowDrawList();
  const float axis_y = origin.y + height - 46;
  dl->AddLine(ImVec2(x_of(-range), axis_y), ImVec2(x_of(range), axis_y), kGrid, 1.5f);
  for (double g : b.grid) {
    for (double v : {g, -g}) {
      dl->AddLine(ImVec2(x_of(v), axis_y - 8), ImVec2(x_of(v), axis_y + 8), kGrid, 1.0f);
    }
  }
  const double limit = b.element_max * b.scale;
  dl->AddLine(ImVec2(x_of(limit), origin.y + 4), ImVec2(x_of(limit), axis_y + 12), kClip, 1.0f);
  dl->AddLine(ImVec2(x_of(-limit), origin.y + 4), ImVec2(x_of(-limit), axis_y + 12), kClip, 1.0f);
  const size_t n = b.values.size();
  for (size_t i = 0; i < n; ++i) {
    const float y = origin.y + 10 + static_cast<float>(i % 8) * 11.0f;
    const bool clipped = std::abs(b.values[i]) > limit;
    const ImVec2 p(x_of(b.values[i]), y), q(x_of(b.quantized[i]), axis_y);
    dl->AddLine(p, q, clipped ? kClip : IM_COL32(200, 200, 200, 90), 1.0f);
    dl->AddCircleFilled(p, 3.5f, clipped ? kClip : kValue);
    dl->AddCircleFilled(q, 3.0f, kQuant);
  }
  for (const auto& [v, text] : numberLineLabels(b)) {
    const QByteArray label = text.toUtf8();
    if (std::isnan(v)) {  // the caption
      dl->AddText(ImVec2(origin.x + 10, axis_y + 26), kGrid, label.constData());
      continue;
    }
    const float w = ImGui::CalcTextSize(label.constData()).x;
    dl->AddText(ImVec2(x_of(v) - w / 2, axis_y + 10), kGrid, label.constData());
  }
  ImGui::Dummy(ImVec2(width, height));
}

std::vector<std::pair<double, QString>> BlockMicroscopeView::numberLineLabels(const MxBlockView& b) {
  const double limit = b.element_max * b.scale;
  std::vector<std::pair<double, QString>> labels;
  for (double v : {-limit, 0.0, limit}) {  // the clip limits and zero, in the activation's units
    char text[32];
    std::snprintf(text, sizeof(text), "%.3g", v);
    labels.emplace_back(v, QString::fromLatin1(text));
  }
  labels.emplace_back(std::nan(""), "activation value: grid points x scale (ticks), inputs (blue) -> quantized "
                                    "(yellow), clipped (red), clip limit (red lines)");
  return labels;
}

void BlockMicroscopeView::drawValueTable(const char* id, const MxBlockView& b) {
  ImGui::TextUnformatted("Values");
  const ImGuiTableFlags flags = ImGuiTableFlags_RowBg | ImGuiTableFlags_ScrollY | ImGuiTableFlags_BordersInnerV;
  if (!ImGui::BeginTable(id, 5, flags, ImVec2(0, 220))) return;
  ImGui::TableSetupColumn("#");
  ImGui::TableSetupColumn("value");
  ImGui::TableSetupColumn("code");
  ImGui::TableSetupColumn("quantized");
  ImGui::TableSetupColumn("error");
  ImGui::TableHeadersRow();
  for (size_t i = 0; i < b.values.size(); ++i) {
    ImGui::TableNextRow();
    ImGui::TableNextColumn();
    ImGui::Text("%d", static_cast<int>(i));
    ImGui::TableNextColumn();
    ImGui::Text("%.5g", static_cast<double>(b.values[i]));
    ImGui::TableNextColumn();
    ImGui::Text("0x%02X", b.codes[i]);
    ImGui::TableNextColumn();
    ImGui::Text("%.5g", static_cast<double>(b.quantized[i]));
    ImGui::TableNextColumn();
    const double err = static_cast<double>(b.quantized[i]) - static_cast<double>(b.values[i]);
    if (std::abs(b.values[i]) > b.element_max * b.scale) {
      ImGui::TextColored(ImVec4(0.95f, 0.35f, 0.35f, 1), "%+.3g (clipped)", err);
    } else {
      ImGui::Text("%+.3g", err);
    }
  }
  ImGui::EndTable();
}

void BlockMicroscopeView::drawComparison(const char* id, const std::vector<FormatComparisonRow>& rows) {
  ImGui::TextUnformatted("The same values under other formats");
  const ImGuiTableFlags flags = ImGuiTableFlags_RowBg | ImGuiTableFlags_BordersInnerV;
  if (!ImGui::BeginTable(id, 5, flags)) return;
  ImGui::TableSetupColumn("format");
  ImGui::TableSetupColumn("scale");
  ImGui::TableSetupColumn("SQNR dB");
  ImGui::TableSetupColumn("MSE");
  ImGui::TableSetupColumn("clipped");
  ImGui::TableHeadersRow();
  for (const auto& row : rows) {
    ImGui::TableNextRow();
    ImGui::TableNextColumn();
    ImGui::TextUnformatted(row.format.toUtf8().constData());
    ImGui::TableNextColumn();
    ImGui::TextUnformatted(row.scale.toUtf8().constData());
    ImGui::TableNextColumn();
    ImGui::Text("%.2f", row.sqnr_db);
    ImGui::TableNextColumn();
    ImGui::Text("%.3g", row.mse);
    ImGui::TableNextColumn();
    ImGui::Text("%d", row.clipped);
  }
  ImGui::EndTable();
}

}  // namespace latmix::widgets
