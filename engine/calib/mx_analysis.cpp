// The MX error analysis (the LATMiX paper's Figure 2): capture, fixed transforms, learned fits.
#include "latmix/mx_analysis.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <utility>

#include "latmix/error.h"
#include "latmix/scoped_hook.h"

namespace latmix {

namespace {

bool is_learned(AnalysisTransform t) {
  return t == AnalysisTransform::LearnedRotation || t == AnalysisTransform::LearnedAffine;
}

MxFormat with_block(MxFormat f, int64_t block) {
  f.block = block;
  return f;
}

at::Tensor reconstruct(const at::Tensor& x, const Transform* t, const MxFormat& f) {
  if (!t) return fake_quantize(x, f, -1);
  return t->inverse(fake_quantize(t->forward(x), f, -1));
}

// MX fake quantization whose forward value is fake_quantize's, bit for bit, and whose gradient
// adds to the straight-through identity the dependence of the error on the block scale: the scale
// follows the block's amax, so e = Q(y) - y moves by e * d(amax) / amax. Plain straight-through
// gives the error no gradient at all (d e / d y = 0), which leaves a rotation nothing to learn
// from when the loss is the reconstruction error itself.
at::Tensor fake_quantize_scale_aware(const at::Tensor& y, const MxFormat& f) {
  const at::Tensor q = fake_quantize(y.detach(), f, -1);
  const at::Tensor yb = y.reshape({y.size(0), y.size(1) / f.block, f.block});
  const at::Tensor amax = yb.abs().amax(2, true);
  const at::Tensor safe = at::where(amax.gt(0), amax, at::ones_like(amax)).detach();
  const at::Tensor ratio = ((q.detach() - y.detach()).reshape(yb.sizes()) / safe).detach();
  const at::Tensor scale_term = (ratio * (amax - amax.detach())).reshape(y.sizes());
  return q + (y - y.detach()) + scale_term;
}

// Crest and peak power of y's blocks (see mx_analysis.h).
std::pair<double, double> block_magnitudes(const at::Tensor& y, int64_t block) {
  const at::Tensor yb = y.to(at::kDouble).reshape({y.size(0), y.size(1) / block, block});
  const at::Tensor amax = yb.abs().amax(2);
  const at::Tensor sumsq = (yb * yb).sum(2);
  const at::Tensor rms = (sumsq / static_cast<double>(block)).sqrt();
  const at::Tensor crest = at::where(rms.gt(0), amax / rms, at::zeros_like(rms));
  const double energy = sumsq.sum().item<double>();
  const double peak = energy > 0 ? (amax * amax).sum().item<double>() * static_cast<double>(block) / energy : 0.0;
  return {crest.mean().item<double>(), peak};
}

// Adam over a transform's leaves, kept here: the analysis needs no schedules or checkpoints.
class Adam {
 public:
  Adam(std::vector<at::Tensor> params, double lr) : params_(std::move(params)), lr_(lr) {
    for (const auto& p : params_) {
      m_.push_back(at::zeros_like(p));
      v_.push_back(at::zeros_like(p));
    }
  }
  void step() {
    c10::NoGradGuard no_grad;
    ++t_;
    const double c1 = 1 - std::pow(0.9, t_), c2 = 1 - std::pow(0.999, t_);
    for (size_t i = 0; i < params_.size(); ++i) {
      at::Tensor& p = params_[i];
      if (!p.grad().defined()) continue;
      const at::Tensor g = p.grad();
      m_[i].mul_(0.9).add_(g, 0.1);
      v_[i].mul_(0.999).addcmul_(g, g, 0.001);
      p.sub_(lr_ * (m_[i] / c1) / ((v_[i] / c2).sqrt() + 1e-8));
      p.mutable_grad().zero_();
    }
  }

 private:
  std::vector<at::Tensor> params_, m_, v_;
  double lr_;
  int t_ = 0;
};

NamedTensors snapshot(const Transform& t) {
  NamedTensors s = t.state();
  for (auto& [name, tensor] : s) tensor = tensor.detach().clone();
  return s;
}

}  // namespace

std::string analysis_transform_name(AnalysisTransform transform) {
  switch (transform) {
    case AnalysisTransform::None:
      return "none";
    case AnalysisTransform::Hadamard:
      return "hadamard";
    case AnalysisTransform::BlockHadamard:
      return "block_hadamard";
    case AnalysisTransform::LearnedRotation:
      return "learned_rotation";
    case AnalysisTransform::LearnedAffine:
      return "learned_affine";
  }
  return "?";
}

std::vector<AnalysisTransform> analysis_transforms() {
  return {AnalysisTransform::None, AnalysisTransform::Hadamard, AnalysisTransform::BlockHadamard,
          AnalysisTransform::LearnedRotation, AnalysisTransform::LearnedAffine};
}

const TransformCurve& MxLayerAnalysis::curve(AnalysisTransform transform) const {
  for (const auto& c : curves) {
    if (c.transform == transform) return c;
  }
  fail("mx analysis", "curve", analysis_transform_name(transform), "missing");
}

std::vector<int64_t> analysis_block_sizes(int64_t width, int64_t limit) {
  std::vector<int64_t> sizes;
  for (int64_t b = 2; b <= std::min(width, limit); b *= 2) {
    if (width % b == 0) sizes.push_back(b);
  }
  return sizes;
}

TransformPtr make_fixed_analysis_transform(AnalysisTransform kind, int64_t dim, int64_t block, uint64_t seed) {
  switch (kind) {
    case AnalysisTransform::None:
      return std::make_shared<IdentityTransform>(dim);
    case AnalysisTransform::Hadamard:
      return std::make_shared<HadamardTransform>(dim, seed);
    case AnalysisTransform::BlockHadamard:
      return std::make_shared<BlockHadamardTransform>(dim, block, seed);
    default:
      break;
  }
  throw UsageError("make_fixed_analysis_transform: " + analysis_transform_name(kind) + " is learned, not fixed");
}

double relative_mx_error(const at::Tensor& x, const Transform* transform, const MxFormat& format) {
  c10::NoGradGuard no_grad;
  const at::Tensor xd = x.to(at::kDouble);
  const double energy = (xd * xd).sum().item<double>();
  if (energy == 0) return 0.0;
  const at::Tensor e = xd - reconstruct(x, transform, format).to(at::kDouble);
  return (e * e).sum().item<double>() / energy;
}

FittedTransform fit_analysis_transform(const at::Tensor& x, AnalysisTransform kind, const MxFormat& format,
                                       const MxAnalysisOptions& options, const JobControl& job) {
  if (!is_learned(kind)) throw UsageError("fit_analysis_transform: " + analysis_transform_name(kind) + " is fixed");
  const int64_t dim = x.size(-1);
  const TransformPtr start =
      make_fixed_analysis_transform(AnalysisTransform::BlockHadamard, dim, format.block, options.seed);
  const at::Tensor h = start->matrix();
  std::shared_ptr<RotationTransform> rotation;
  std::shared_ptr<AffineTransform> affine;
  TransformPtr t;
  if (kind == AnalysisTransform::LearnedRotation) {
    t = rotation = std::make_shared<RotationTransform>(dim, h, RotationTransform::Map::Cayley);
  } else {
    t = affine = std::make_shared<AffineTransform>(dim, options.affine, h);
  }
  const at::Tensor xf = x.to(at::kFloat).detach();
  const double energy = (xf.to(at::kDouble) * xf.to(at::kDouble)).sum().item<double>();
  // The affine parameters start at the block Hadamard's entries, +-1/sqrt(b): scaling the step
  // with them keeps its relative size the same at every block size (a step of lr at b = 512 made
  // the LU fit from the dense Hadamard diverge on gutenberg-llama-22M).
  const double lr = affine ? options.lr * std::sqrt(32.0 / static_cast<double>(format.block)) : options.lr;
  Adam adam(t->parameters(), lr);
  double best = std::numeric_limits<double>::infinity();
  int64_t best_step = 0;
  NamedTensors best_state;
  at::Tensor best_rotation;
  for (int64_t step = 0; step <= options.steps; ++step) {
    job.cancel.check();
    const bool last = step == options.steps;
    c10::AutoGradMode grad(!last);
    const at::Tensor e = xf - t->inverse(fake_quantize_scale_aware(t->forward(xf), format));
    const at::Tensor loss = (e * e).sum() / (energy > 0 ? energy : 1.0);
    const double value = loss.item<double>();  // the exact error of the parameters before this step
    if (std::isfinite(value) && value < best) {
      best = value;
      best_step = step;
      if (rotation) {
        best_rotation = rotation->rotation().detach().clone();
      } else {
        best_state = snapshot(*affine);
      }
    }
    if (last) break;
    loss.backward();
    adam.step();
    if (rotation) rotation->recenter();
  }
  if (rotation) {
    t = std::make_shared<RotationTransform>(dim, best_rotation, RotationTransform::Map::Cayley);
  } else {
    affine->load_state(best_state, "mx analysis");
  }
  FittedTransform fit;
  fit.init_error = relative_mx_error(xf, start.get(), format);
  fit.error = relative_mx_error(xf, t.get(), format);
  fit.best_step = best_step;
  fit.transform = t;
  // Step 0 is the start up to the rounding of its parametrization: report the start itself then.
  if (best_step == 0 || !(fit.error < fit.init_error)) {  // also when the learned error is NaN
    fit.transform = start;
    fit.error = fit.init_error;
    fit.best_step = 0;
  }
  return fit;
}

namespace {

// One transform at one block size; `t` null for a skipped transform.
BlockSizeResult measure(const at::Tensor& x, const Transform* t, const MxFormat& f, bool orthogonal) {
  c10::NoGradGuard no_grad;
  BlockSizeResult r;
  r.block = f.block;
  r.rel_error = relative_mx_error(x, t, f);
  const at::Tensor y = t ? t->forward(x) : x;
  std::tie(r.block_crest, r.block_peak_power) = block_magnitudes(y, f.block);
  r.condition_number = orthogonal ? 1.0 : t->report().condition_number;
  return r;
}

std::vector<double> block_errors(const at::Tensor& x, const Transform* t, const MxFormat& f, int64_t detail) {
  c10::NoGradGuard no_grad;
  const at::Tensor xd = x.to(at::kDouble);
  const double energy = (xd * xd).sum().item<double>();
  const at::Tensor e = xd - reconstruct(x, t, f).to(at::kDouble);
  const at::Tensor per = (e * e).reshape({x.size(0), x.size(1) / detail, detail}).sum(at::IntArrayRef{0, 2});
  std::vector<double> out(static_cast<size_t>(per.size(0)));
  for (int64_t j = 0; j < per.size(0); ++j)
    out[static_cast<size_t>(j)] = energy > 0 ? per[j].item<double>() / energy : 0;
  return out;
}

// One learned transform at one block size: fitted on fit_rows, measured on xf; the kept transform in *kept.
BlockSizeResult measure_learned(const at::Tensor& fit_rows, const at::Tensor& xf, AnalysisTransform kind,
                                const MxFormat& f, const MxAnalysisOptions& options, const JobControl& job,
                                TransformPtr* kept) {
  const FittedTransform fit = fit_analysis_transform(fit_rows, kind, f, options, job);
  *kept = fit.transform;
  BlockSizeResult r = measure(xf, kept->get(), f, (*kept)->is_orthogonal());
  r.init_error = fit.init_error;
  r.fit_error = fit.error;
  r.best_step = fit.best_step;
  r.steps = options.steps;
  r.note = fit.best_step == 0
               ? "kept the block-Hadamard init"
               : "learned (step " + std::to_string(fit.best_step) + " of " + std::to_string(options.steps) + ")";
  return r;
}

// The capture's identity, block sizes (checked against the width) and detail block.
MxLayerAnalysis layer_header(CapturePoint point, int64_t layer, int64_t features, const MxAnalysisOptions& options) {
  MxLayerAnalysis a;
  a.point = point;
  a.layer = layer;
  a.features = features;
  a.block_sizes = options.block_sizes.empty() ? analysis_block_sizes(features) : options.block_sizes;
  for (int64_t b : a.block_sizes) {
    if (b < 1 || features % b != 0) {
      throw UsageError("block size " + std::to_string(b) + " does not divide the width " + std::to_string(features) +
                       " of " + capture_point_name(point) + " (layer " + std::to_string(layer) + ")");
    }
  }
  const bool has_detail = std::count(a.block_sizes.begin(), a.block_sizes.end(), options.detail_block) > 0;
  a.detail_block = has_detail ? options.detail_block : 0;
  return a;
}

}  // namespace

MxLayerAnalysis analyze_activations(const at::Tensor& x, CapturePoint point, int64_t layer,
                                    const MxAnalysisOptions& options, const JobControl& job, int64_t done_before,
                                    int64_t total) {
  if (x.dim() != 2) {
    fail("mx analysis", "activation rows", "a 2-d tensor [tokens, width]", std::to_string(x.dim()) + "-d");
  }
  if (!(options.holdout >= 0 && options.holdout < 1)) {
    throw UsageError("holdout must be in [0, 1), got " + std::to_string(options.holdout));
  }
  const at::Tensor all = x.to(at::kFloat).contiguous();
  const int64_t held = std::min<int64_t>(
      all.size(0) - 1, static_cast<int64_t>(std::llround(options.holdout * static_cast<double>(all.size(0)))));
  const at::Tensor fit_rows = held > 0 ? all.slice(0, 0, all.size(0) - held) : all;
  const at::Tensor xf = held > 0 ? all.slice(0, all.size(0) - held) : all;  // the measured rows
  MxLayerAnalysis a = layer_header(point, layer, xf.size(1), options);
  a.tokens = xf.size(0);
  a.fit_tokens = fit_rows.size(0);
  std::string hadamard_note;
  try {
    hadamard_order(a.features);
  } catch (const Error& e) {
    hadamard_note = "no full Hadamard of width " + std::to_string(a.features) + ": " + e.what();
  }
  int64_t done = done_before;
  for (AnalysisTransform kind : analysis_transforms()) {
    TransformCurve curve;
    curve.transform = kind;
    for (int64_t b : a.block_sizes) {
      const MxFormat f = with_block(options.format, b);
      TransformPtr t;
      BlockSizeResult r;
      if (kind == AnalysisTransform::Hadamard && !hadamard_note.empty()) {
        r.block = b;
        r.skipped = true;
        r.note = hadamard_note;
        curve.sizes.push_back(r);
        continue;
      }
      if (is_learned(kind)) {
        job.report("fit", done, total);
        r = measure_learned(fit_rows, xf, kind, f, options, job, &t);
        job.report("fit", ++done, total);
      } else {
        job.cancel.check();
        t = make_fixed_analysis_transform(kind, a.features, b, options.seed);
        r = measure(xf, kind == AnalysisTransform::None ? nullptr : t.get(), f, true);
      }
      if (b == a.detail_block) {
        curve.block_errors = block_errors(xf, kind == AnalysisTransform::None ? nullptr : t.get(), f, b);
      }
      curve.sizes.push_back(r);
    }
    a.curves.push_back(std::move(curve));
  }
  return a;
}

namespace {

// Keeps the rows of every wanted (point, layer) on the CPU in float32.
class RowCapture : public CaptureHook {
 public:
  explicit RowCapture(const std::vector<std::pair<CapturePoint, int64_t>>& wanted) {
    for (const auto& w : wanted) rows_[{static_cast<int>(w.first), w.second}];
  }
  bool wants(CapturePoint point, int64_t layer) const override {
    return rows_.count({static_cast<int>(point), layer}) > 0;
  }
  at::Tensor on_capture(CapturePoint point, int64_t layer, const at::Tensor& x) override {
    rows_[{static_cast<int>(point), layer}].push_back(
        x.detach().reshape({-1, x.size(-1)}).to(at::kCPU).to(at::kFloat).clone());
    return {};
  }
  at::Tensor rows(CapturePoint point, int64_t layer) const {
    return at::cat(rows_.at({static_cast<int>(point), layer}), 0);
  }

 private:
  std::map<std::pair<int, int64_t>, std::vector<at::Tensor>> rows_;
};

}  // namespace

MxAnalysis analyze_mx_error(Model& model, const CalibrationSet& data, const MxAnalysisOptions& options,
                            const JobControl& job) {
  if (options.points.empty()) throw UsageError("mx analysis: no capture points");
  if (options.batch_size < 1) throw UsageError("mx analysis: batch size must be >= 1");
  const int64_t num_layers = model.config().num_layers;
  std::vector<int64_t> layers = options.layers;
  for (int64_t l : layers) {
    if (l < 0 || l >= num_layers) {
      throw UsageError("--layer " + std::to_string(l) + " is out of range: the model has " +
                       std::to_string(num_layers) + " decoder layers (0.." + std::to_string(num_layers - 1) + ")");
    }
  }
  if (layers.empty()) {
    for (int64_t l = 0; l < num_layers; ++l) layers.push_back(l);
  }
  std::vector<std::pair<CapturePoint, int64_t>> wanted;
  for (int64_t l : layers) {
    for (CapturePoint p : options.points) {
      if (p != CapturePoint::FinalNormOut) wanted.emplace_back(p, l);
    }
  }
  for (CapturePoint p : options.points) {
    if (p == CapturePoint::FinalNormOut) wanted.emplace_back(p, num_layers);
  }
  auto capture = std::make_shared<RowCapture>(wanted);
  {
    const ScopedHook guard(model, capture);
    c10::NoGradGuard no_grad;
    const int64_t total = data.size();
    job.report("capture", 0, total);
    for (int64_t first = 0; first < total; first += options.batch_size) {
      job.cancel.check();
      const int64_t count = std::min(options.batch_size, total - first);
      model.hidden_states(data.batch(first, count, model.device()));
      job.report("capture", first + count, total);
    }
  }
  std::vector<at::Tensor> rows;
  int64_t fits = 0;
  for (const auto& [p, l] : wanted) {
    rows.push_back(capture->rows(p, l));
    const int64_t sizes = options.block_sizes.empty()
                              ? static_cast<int64_t>(analysis_block_sizes(rows.back().size(1)).size())
                              : static_cast<int64_t>(options.block_sizes.size());
    fits += 2 * sizes;
  }
  capture.reset();
  MxAnalysis out;
  out.format = options.format.name();
  out.format_description = options.format.describe();
  out.affine = options.affine == AffineTransform::Param::LU ? "lu" : "qr";
  out.steps = options.steps;
  out.lr = options.lr;
  out.holdout = options.holdout;
  out.seed = options.seed;
  out.sequences = data.size();
  out.seqlen = data.seqlen();
  int64_t done = 0;
  for (size_t i = 0; i < wanted.size(); ++i) {
    out.layers.push_back(analyze_activations(rows[i], wanted[i].first, wanted[i].second, options, job, done, fits));
    done += 2 * static_cast<int64_t>(out.layers.back().block_sizes.size());
    rows[i] = at::Tensor();
  }
  std::stable_sort(out.layers.begin(), out.layers.end(), [](const MxLayerAnalysis& a, const MxLayerAnalysis& b) {
    return a.layer != b.layer ? a.layer < b.layer : static_cast<int>(a.point) < static_cast<int>(b.point);
  });
  return out;
}

}  // namespace latmix
