// Plots: nice ticks, log decades, rendered charts checked by their pixels (title band, series
// colours, gaps at NaN, log straightening, bar heights), invalid input, typical PNG size.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "latmix/error.h"
#include "latmix/plot.h"
#include "test_paths.h"

using latmix::Axis;
using latmix::BarChart;
using latmix::Image;
using latmix::LinePlot;
using latmix::Rgba;
using latmix::Series;

namespace {

bool is_ink(const Rgba& p) {
  return p.r < 120 && p.g < 120 && p.b < 120;
}

int count_where(const Image& img, int x0, int y0, int x1, int y1, bool (*pred)(const Rgba&, const Rgba&), Rgba ref) {
  int n = 0;
  for (int y = std::max(0, y0); y < std::min(img.height(), y1); ++y) {
    for (int x = std::max(0, x0); x < std::min(img.width(), x1); ++x) n += pred(img.at(x, y), ref);
  }
  return n;
}

bool same(const Rgba& p, const Rgba& ref) {
  return p == ref;
}
bool ink(const Rgba& p, const Rgba&) {
  return is_ink(p);
}

int count_colour(const Image& img, Rgba c) {
  return count_where(img, 0, 0, img.width(), img.height(), same, c);
}

// Columns holding at least one pixel of colour c.
std::vector<bool> columns_with(const Image& img, Rgba c) {
  std::vector<bool> cols(static_cast<size_t>(img.width()), false);
  for (int x = 0; x < img.width(); ++x) {
    for (int y = 0; y < img.height() && !cols[static_cast<size_t>(x)]; ++y)
      cols[static_cast<size_t>(x)] = img.at(x, y) == c;
  }
  return cols;
}

// Mean row of the pixels of colour c in column x (NaN if none).
double mean_row(const Image& img, int x, Rgba c) {
  double sum = 0;
  int n = 0;
  for (int y = 0; y < img.height(); ++y) {
    if (img.at(x, y) == c) sum += y, ++n;
  }
  return n ? sum / n : NAN;
}

Series series(const std::string& name, std::vector<double> x, std::vector<double> y) {
  Series s;
  s.name = name;
  s.x = std::move(x);
  s.y = std::move(y);
  return s;
}

std::vector<std::string> labels_of(const Axis& a) {
  std::vector<std::string> out;
  for (const auto& t : a.ticks) {
    if (!t.label.empty()) out.push_back(t.label);
  }
  return out;
}

}  // namespace

TEST(PlotAxis, NiceLinearTicks) {
  const Axis a = latmix::make_axis(0, 0.93, false, 6);
  EXPECT_DOUBLE_EQ(a.lo, 0);
  EXPECT_DOUBLE_EQ(a.hi, 1.0);
  EXPECT_EQ(labels_of(a), (std::vector<std::string>{"0", "0.2", "0.4", "0.6", "0.8", "1.0"}));
  const Axis b = latmix::make_axis(-3.2, 17, false, 5);
  EXPECT_EQ(labels_of(b), (std::vector<std::string>{"-5", "0", "5", "10", "15", "20"}));
  const Axis c = latmix::make_axis(7, 7, false, 6);  // one value: widened around it
  EXPECT_LT(c.lo, 7);
  EXPECT_GT(c.hi, 7);
}

TEST(PlotAxis, StepsAreOneTwoFiveAndCoverTheData) {
  std::srand(11);
  for (int trial = 0; trial < 500; ++trial) {
    const double scale = std::pow(10.0, std::rand() % 16 - 8);
    const double lo = (std::rand() % 2000 - 1000) * scale / 100, hi = lo + (std::rand() % 1000 + 1) * scale / 37;
    const Axis a = latmix::make_axis(lo, hi, false, 6);
    ASSERT_GE(a.ticks.size(), 3U) << lo << " " << hi;
    EXPECT_LE(a.ticks.size(), 13U) << lo << " " << hi;
    EXPECT_LE(a.lo, lo);
    EXPECT_GE(a.hi, hi);
    const double step = a.ticks[1].value - a.ticks[0].value;
    const double mantissa = step / std::pow(10.0, std::floor(std::log10(step) + 1e-9));
    EXPECT_TRUE(std::abs(mantissa - 1) < 1e-6 || std::abs(mantissa - 2) < 1e-6 || std::abs(mantissa - 5) < 1e-6)
        << "step " << step;
    const auto labels = labels_of(a);
    EXPECT_EQ(std::set<std::string>(labels.begin(), labels.end()).size(), labels.size()) << lo << " " << hi;
  }
}

TEST(PlotAxis, LogAxisEndsOnDecades) {
  const Axis a = latmix::make_axis(1e-3, 50, true, 6);
  EXPECT_TRUE(a.log);
  EXPECT_DOUBLE_EQ(a.lo, 1e-3);
  EXPECT_DOUBLE_EQ(a.hi, 100);
  EXPECT_EQ(labels_of(a), (std::vector<std::string>{"0.001", "0.01", "0.1", "1", "10", "100"}));
  int minor = 0;
  for (const auto& t : a.ticks) minor += !t.major;
  EXPECT_EQ(minor, 5 * 8);                   // 2..9 in each of five decades
  EXPECT_NEAR(a.fraction(0.1), 0.4, 1e-12);  // decades are evenly spaced
  EXPECT_NEAR(a.fraction(1), 0.6, 1e-12);

  const Axis wide = latmix::make_axis(3e-12, 4e11, true, 6);
  const auto labels = labels_of(wide);
  EXPECT_LE(labels.size(), 8U);
  EXPECT_GE(labels.size(), 4U);
  EXPECT_NE(std::find(labels.begin(), labels.end(), "1e-12"), labels.end());
}

TEST(PlotAxis, NarrowLogAxes) {
  const Axis a = latmix::make_axis(3, 25, true, 6);
  EXPECT_EQ(labels_of(a), (std::vector<std::string>{"2", "5", "10", "20", "50"}));
  const Axis b = latmix::make_axis(5.2, 8.9, true, 6);
  EXPECT_GT(b.lo, 0);
  EXPECT_LE(b.lo, 5.2);
  EXPECT_GE(b.hi, 8.9);
  EXPECT_GE(labels_of(b).size(), 3U);
}

TEST(PlotAxis, RejectsImpossibleRanges) {
  EXPECT_THROW(latmix::make_axis(0, 10, true), latmix::UsageError);
  EXPECT_THROW(latmix::make_axis(-1, 10, true), latmix::UsageError);
  EXPECT_THROW(latmix::make_axis(NAN, 10, false), latmix::UsageError);
  EXPECT_THROW(latmix::make_axis(0, INFINITY, false), latmix::UsageError);
}

TEST(PlotAxis, TickLabels) {
  EXPECT_EQ(latmix::format_tick(0.25, 0.05), "0.25");
  EXPECT_EQ(latmix::format_tick(1500, 500), "1500");
  EXPECT_EQ(latmix::format_tick(-3, 1), "-3");
  EXPECT_EQ(latmix::format_tick(1e-17, 0.1), "0");  // rounding noise at zero
  EXPECT_EQ(latmix::format_tick(2e-5, 1e-5), "2e-05");
  EXPECT_EQ(latmix::format_tick(1.5e7, 5e6), "1.5e+07");
}

TEST(LinePlot, TitleSeriesColourAndBlankness) {
  LinePlot p;
  p.title = "Calibration loss";
  p.x_label = "step";
  p.y_label = "loss";
  p.series.push_back(series("latmix_lu", {0, 1, 2, 3, 4}, {3, 2, 1.5, 1.2, 1.1}));
  const Image img = latmix::render(p);
  EXPECT_EQ(img.width(), 900);
  EXPECT_EQ(img.height(), 520);
  const Rgba colour = latmix::default_palette()[0];
  EXPECT_GT(count_colour(img, colour), 500);  // a 2-px line across ~700 px
  // The title (2x font) sits in the top band; without it that band is blank.
  const int title_ink = count_where(img, 0, 0, img.width(), 36, ink, {});
  EXPECT_GT(title_ink, 100);
  p.title.clear();
  const Image untitled = latmix::render(p);
  EXPECT_EQ(count_where(untitled, 0, 0, untitled.width(), 12, ink, {}), 0);
  // Not blank: axes, labels, line.
  EXPECT_GT(count_where(untitled, 0, 0, untitled.width(), untitled.height(), ink, {}), 1500);
}

TEST(LinePlot, NanLeavesAGapAndANote) {
  LinePlot p;
  Series s = series("", {}, {});  // unnamed: no legend swatch in the colour
  for (int i = 0; i <= 20; ++i) s.x.push_back(i), s.y.push_back(1 + 0.01 * i);
  s.y[10] = NAN;
  s.color = Rgba{200, 30, 30, 255};
  p.series.push_back(s);
  std::vector<std::string> notes;
  const Image img = latmix::render(p, &notes);
  ASSERT_EQ(notes.size(), 1U);
  EXPECT_NE(notes[0].find("1 point with NaN/Inf not shown"), std::string::npos) << notes[0];
  const auto cols = columns_with(img, s.color);
  int first = -1, last = -1, longest_gap = 0, gap = 0;
  for (int x = 0; x < img.width(); ++x) {
    if (cols[static_cast<size_t>(x)]) {
      if (first < 0) first = x;
      last = x;
      gap = 0;
    } else if (first >= 0) {
      longest_gap = std::max(longest_gap, ++gap);
    }
  }
  ASSERT_GT(last - first, 300);
  // x = 9..11 is missing: 2/20 of the line's span, less the round caps.
  const double expected = (last - first) * 2.0 / 20;
  EXPECT_GT(longest_gap, expected - 6);
  EXPECT_LT(longest_gap, expected + 2);
}

TEST(LinePlot, LogScaleStraightensPowersOfTen) {
  LinePlot p;
  p.series.push_back(series("", {0, 1, 2, 3, 4}, {1, 10, 100, 1000, 10000}));  // unnamed: no legend
  p.series[0].color = Rgba{0, 0, 200, 255};
  auto mid_deviation = [&](bool log) {
    p.log_y = log;
    const Image img = latmix::render(p);
    const auto cols = columns_with(img, p.series[0].color);
    int first = -1, last = -1;
    for (int x = 0; x < img.width(); ++x) {
      if (!cols[static_cast<size_t>(x)]) continue;
      if (first < 0) first = x;
      last = x;
    }
    const int a = first + 5, b = last - 5, m = (a + b) / 2;
    return mean_row(img, m, p.series[0].color) -
           (mean_row(img, a, p.series[0].color) + mean_row(img, b, p.series[0].color)) / 2;
  };
  EXPECT_LT(std::abs(mid_deviation(true)), 2.0);     // a straight line on the log axis
  EXPECT_GT(std::abs(mid_deviation(false)), 100.0);  // strongly curved on the linear one
}

TEST(LinePlot, NonPositiveValuesOnLogScaleAreSkippedWithANote) {
  LinePlot p;
  p.log_y = true;
  p.series.push_back(series("a", {0, 1, 2, 3}, {1, 0, -5, 100}));
  std::vector<std::string> notes;
  const Image img = latmix::render(p, &notes);
  ASSERT_EQ(notes.size(), 1U);
  EXPECT_NE(notes[0].find("2 points with y <= 0 not shown on the log scale (a)"), std::string::npos) << notes[0];
  // The two remaining points are isolated runs: drawn as dots, so the colour still appears.
  EXPECT_GT(count_colour(img, latmix::default_palette()[0]), 10);
  // The note is drawn near the bottom edge.
  EXPECT_GT(count_where(img, 0, img.height() - 20, img.width(), img.height(), ink, {}), 50);
}

TEST(LinePlot, EmptySingleAndInvalid) {
  LinePlot empty;
  empty.series.push_back(series("nothing", {}, {}));
  std::vector<std::string> notes;
  EXPECT_NO_THROW(latmix::render(empty, &notes));
  EXPECT_TRUE(notes.empty());
  EXPECT_NO_THROW(latmix::render(LinePlot{}));

  LinePlot single;
  single.series.push_back(series("one", {3}, {7}));
  EXPECT_GT(count_colour(latmix::render(single), latmix::default_palette()[0]), 10);

  LinePlot bad;
  bad.series.push_back(series("bad", {1, 2, 3}, {1, 2}));
  EXPECT_THROW(latmix::render(bad), latmix::UsageError);
  LinePlot tiny;
  tiny.width = 100;
  EXPECT_THROW(latmix::render(tiny), latmix::UsageError);
}

TEST(LinePlot, PaletteAndMarkers) {
  const auto palette = latmix::default_palette();
  ASSERT_EQ(palette.size(), 8U);
  std::set<std::tuple<int, int, int>> distinct;
  for (const Rgba& c : palette) distinct.insert({c.r, c.g, c.b});
  EXPECT_EQ(distinct.size(), 8U);
  LinePlot p;
  for (int s = 0; s < 3; ++s)
    p.series.push_back(series("s" + std::to_string(s), {0, 1, 2}, {1.0 + s, 2.0 + s, 1.5 + s}));
  p.series[2].markers = true;
  p.series[1].dashed = true;
  const Image img = latmix::render(p);
  for (int s = 0; s < 3; ++s) EXPECT_GT(count_colour(img, palette[static_cast<size_t>(s)]), 100) << s;
}

TEST(BarChart, HeightsAreProportionalFromZero) {
  BarChart c;
  c.groups = {{"a", {1}, {}}, {"b", {2}, {}}, {"c", {4}, {}}};
  const Image img = latmix::render(c);
  const Rgba colour = latmix::default_palette()[0];
  const auto cols = columns_with(img, colour);
  std::vector<int> heights;
  for (int x = 0; x < img.width();) {
    if (!cols[static_cast<size_t>(x)]) {
      ++x;
      continue;
    }
    int end = x;
    while (end < img.width() && cols[static_cast<size_t>(end)]) ++end;
    heights.push_back(count_where(img, (x + end) / 2, 0, (x + end) / 2 + 1, img.height(), same, colour));
    x = end;
  }
  ASSERT_EQ(heights.size(), 3U);
  EXPECT_NEAR(heights[1], 2.0 * heights[0], 2.0);
  EXPECT_NEAR(heights[2], 4.0 * heights[0], 2.0);
}

TEST(BarChart, SeriesColoursLegendLabelsAndLogDecades) {
  BarChart c;
  c.title = "perplexity";
  c.series_names = {"W4A4", "MXFP4"};
  c.groups = {{"rtn", {12.5, 11}, {0.5, 0.4}}, {"latmix_lu", {9.1, NAN}, {0.3, 0}}};
  c.value_labels = true;
  std::vector<std::string> notes;
  const Image img = latmix::render(c, &notes);
  const auto palette = latmix::default_palette();
  EXPECT_GT(count_colour(img, palette[0]), 1000);
  EXPECT_GT(count_colour(img, palette[1]), 1000);
  ASSERT_EQ(notes.size(), 1U);
  EXPECT_NE(notes[0].find("1 value missing"), std::string::npos);

  BarChart log;
  log.log_y = true;
  log.groups = {{"a", {1}, {}}, {"b", {10}, {}}, {"c", {100}, {}}, {"d", {0}, {}}};
  const Image limg = latmix::render(log, &notes);
  ASSERT_EQ(notes.size(), 1U);
  EXPECT_NE(notes[0].find("1 value <= 0 not shown on the log scale"), std::string::npos);
  std::vector<int> heights;
  const auto cols = columns_with(limg, palette[0]);
  for (int x = 0; x < limg.width();) {
    if (!cols[static_cast<size_t>(x)]) {
      ++x;
      continue;
    }
    int end = x;
    while (end < limg.width() && cols[static_cast<size_t>(end)]) ++end;
    heights.push_back(count_where(limg, (x + end) / 2, 0, (x + end) / 2 + 1, limg.height(), same, palette[0]));
    x = end;
  }
  ASSERT_EQ(heights.size(), 3U);
  EXPECT_GT(heights[0], 5);                                            // the smallest bar stays visible
  EXPECT_NEAR(heights[2] - heights[1], heights[1] - heights[0], 2.0);  // equal steps per decade
}

TEST(BarChart, InvalidInput) {
  BarChart c;
  c.series_names = {"a", "b"};
  c.groups = {{"g", {1}, {}}};
  EXPECT_THROW(latmix::render(c), latmix::UsageError);
  c.groups = {{"g", {1, 2}, {0.1}}};
  EXPECT_THROW(latmix::render(c), latmix::UsageError);
  c.groups = {{"g", {1, 2}, {0.1, -0.2}}};
  EXPECT_THROW(latmix::render(c), latmix::UsageError);
  c.groups = {{"g", {1, 2}, {0.1, NAN}}};
  EXPECT_THROW(latmix::render(c), latmix::UsageError);
  c.groups = {};
  EXPECT_NO_THROW(latmix::render(c));  // no groups: an empty chart saying "no data"
}

TEST(LinePlot, TypicalLossCurvePngIsSmallAndDecodes) {
  LinePlot p;
  p.title = "Calibration loss";
  p.x_label = "step";
  p.y_label = "loss";
  for (int s = 0; s < 4; ++s) {
    Series se = series("method " + std::to_string(s), {}, {});
    for (int i = 0; i <= 500; i += 5) {
      se.x.push_back(i);
      se.y.push_back(0.5 + (2.0 + s * 0.4) * std::exp(-i / (60.0 + 30 * s)) + 0.03 * std::sin(i * 0.3 + s));
    }
    p.series.push_back(se);
  }
  const Image img = latmix::render(p);
  const auto png = latmix::encode_png(img);
  std::cout << "[ size     ] 900x520 line plot, 4 series x 101 points: " << png.size() << " bytes PNG (raw RGB "
            << 900 * 520 * 3 << ")\n";
  EXPECT_LT(png.size(), 120000U);
  if (std::system((latmix::test::python() + " -c 'import zlib' >/dev/null 2>&1").c_str()) != 0) GTEST_SKIP() << "python3 not found";
  const std::string dir = latmix::test::temp_dir("plotpng");
  latmix::write_png(dir + "/loss.png", img);
  const std::string cmd = latmix::test::python() + " '" + latmix::test::source_path("tests/support/png_decode.py") + "' png '" + dir +
                          "/loss.png' '" + dir + "/loss.rgba' >/dev/null";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  FILE* f = std::fopen((dir + "/loss.rgba").c_str(), "rb");
  ASSERT_NE(f, nullptr);
  const size_t expected = static_cast<size_t>(900) * 520 * 4;
  std::vector<uint8_t> rgba(expected + 1);  // one spare byte: a longer file shows up as a size mismatch
  const size_t got = std::fread(rgba.data(), 1, rgba.size(), f);
  std::fclose(f);
  ASSERT_EQ(got, expected);
  size_t mismatches = 0;
  for (int y = 0; y < 520; ++y) {
    for (int x = 0; x < 900; ++x) {
      const uint8_t* q = rgba.data() + (static_cast<size_t>(y) * 900 + x) * 4;
      const Rgba& pix = img.at(x, y);
      mismatches += q[0] != pix.r || q[1] != pix.g || q[2] != pix.b || q[3] != 255;
    }
  }
  EXPECT_EQ(mismatches, 0U);
}
