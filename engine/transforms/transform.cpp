// Transform base class and the fixed/orthogonal transforms (identity, diagonal, Hadamard,
// block Hadamard, dense orthogonal, learned rotation).
#include <c10/core/GradMode.h>
#include <ATen/ATen.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <random>

#include "latmix/error.h"
#include "latmix/transforms.h"

namespace latmix {

namespace {

at::ScalarType compute_type(const at::Tensor& x) {
  return x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
}

/// p in x's dtype and device (no copy when they already match).
at::Tensor like(const at::Tensor& p, const at::Tensor& x) {
  return p.to(x.device(), x.scalar_type());
}

at::Tensor random_signs(int64_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  at::Tensor s = at::empty({n}, at::kFloat);
  float* d = s.data_ptr<float>();
  for (int64_t i = 0; i < n; ++i) d[i] = (rng() >> 63) ? -1.f : 1.f;
  return s;
}

at::Tensor check_signs(const at::Tensor& signs, int64_t dim, const char* who) {
  if (signs.dim() != 1 || signs.size(0) != dim) {
    fail(who, "signs", "shape [" + std::to_string(dim) + "]", "dim " + std::to_string(signs.dim()));
  }
  at::Tensor s = signs.to(at::kFloat);
  if (!at::abs(s).eq(1).all().item<bool>()) fail(who, "signs", "entries +1 or -1", "other values");
  return s.clone();
}

at::Tensor zero_scalar(const at::Device& device) {
  return at::zeros({}, at::TensorOptions(at::kFloat).device(device));
}

at::Tensor leaf(const at::Tensor& t, bool trainable) {
  at::Tensor out = t.detach().to(at::kFloat).clone();
  if (trainable) out.set_requires_grad(true);
  return out;
}

}  // namespace

// ---- Transform ----------------------------------------------------------------------------

void Transform::check_width(const at::Tensor& x, const char* what) const {
  if (!x.defined() || x.dim() == 0 || x.size(-1) != dim_) {
    fail(kind() + " transform", what, "last dimension " + std::to_string(dim_),
         x.defined() && x.dim() > 0 ? std::to_string(x.size(-1)) : std::string("no dimension"));
  }
}

at::Tensor Transform::forward(const at::Tensor& x) const {
  check_width(x, "forward input");
  at::Tensor xc = x.to(compute_type(x));
  at::Tensor y = apply_linear(xc);
  at::Tensor v = bias();
  if (v.defined()) y = y + like(v, xc);
  return y.to(x.scalar_type());
}

at::Tensor Transform::inverse(const at::Tensor& y) const {
  check_width(y, "inverse input");
  at::Tensor yc = y.to(compute_type(y));
  at::Tensor v = bias();
  if (v.defined()) yc = yc - like(v, yc);
  return apply_inverse_linear(yc).to(y.scalar_type());
}

at::Tensor Transform::fold_into_reader(const at::Tensor& w) const {
  check_width(w, "reader weight");
  return apply_inverse_right(w.to(at::kDouble)).to(w.scalar_type());
}

at::Tensor Transform::fold_into_writer(const at::Tensor& w) const {
  if (!w.defined() || w.size(0) != dim_) {
    fail(kind() + " transform", "writer weight", "first dimension " + std::to_string(dim_),
         w.defined() ? std::to_string(w.size(0)) : std::string("undefined"));
  }
  if (w.dim() == 1) return apply_linear(w.to(at::kDouble)).to(w.scalar_type());
  return apply_linear(w.t().to(at::kDouble)).t().to(w.scalar_type());
}

at::Tensor Transform::apply_inverse_right(const at::Tensor& w) const {
  return at::matmul(w, like(inverse_matrix(), w));
}

at::Tensor Transform::matrix() const {
  const auto s = state();
  const at::Device device = s.empty() ? at::Device(at::kCPU) : s.front().second.device();
  return apply_linear(at::eye(dim_, at::TensorOptions(at::kFloat).device(device))).t();
}

at::Tensor Transform::inverse_matrix() const {
  const auto s = state();
  const at::Device device = s.empty() ? at::Device(at::kCPU) : s.front().second.device();
  return apply_inverse_linear(at::eye(dim_, at::TensorOptions(at::kFloat).device(device))).t();
}

at::Tensor Transform::log_abs_det() const {
  return std::get<1>(at::linalg_slogdet(matrix().to(at::kDouble))).to(at::kFloat);
}

TransformReport Transform::report() const {
  c10::NoGradGuard no_grad;
  TransformReport r;
  r.kind = kind();
  r.dim = dim_;
  r.log_abs_det = log_abs_det().item<double>();
  at::Tensor v = bias();
  if (v.defined()) r.bias_norm = v.to(at::kDouble).norm().item<double>();
  if (is_orthogonal()) return r;
  at::Tensor a = matrix().to(at::kDouble);
  at::Tensor sv = at::linalg_svdvals(a);
  r.condition_number = (sv.max() / sv.min()).item<double>();
  r.orthogonality_error = (at::matmul(a, a.t()) - at::eye(dim_, a.options())).abs().max().item<double>();
  return r;
}

nlohmann::json Transform::describe() const {
  return {{"kind", kind()}, {"dim", dim_}};
}

at::Tensor IdentityTransform::log_abs_det() const {
  return zero_scalar(at::kCPU);
}

// ---- Diagonal -------------------------------------------------------------------------------

DiagonalTransform::DiagonalTransform(const at::Tensor& scale, bool trainable)
    : Transform(scale.defined() && scale.dim() == 1 ? scale.size(0) : 0), trainable_(trainable) {
  if (dim() == 0) fail("diagonal transform", "scale", "a 1-D non-empty tensor", "another shape");
  if (scale.eq(0).any().item<bool>()) fail("diagonal transform", "scale", "non-zero entries", "a zero");
  scale_ = leaf(scale, trainable);
}

std::shared_ptr<DiagonalTransform> DiagonalTransform::smoothquant(const at::Tensor& act_absmax,
                                                                  const at::Tensor& weight_absmax, double alpha) {
  if (act_absmax.sizes() != weight_absmax.sizes() || act_absmax.dim() != 1) {
    fail("smoothquant", "statistics", "two 1-D tensors of the same width", "mismatched shapes");
  }
  if (alpha < 0 || alpha > 1) fail("smoothquant", "alpha", "a value in [0, 1]", std::to_string(alpha));
  at::Tensor a = act_absmax.to(at::kFloat).abs().clamp_min(1e-5);
  at::Tensor w = weight_absmax.to(at::kFloat).abs().clamp_min(1e-5);
  at::Tensor s = at::pow(a, alpha) / at::pow(w, 1.0 - alpha);
  return std::make_shared<DiagonalTransform>(1.0 / s);
}

std::vector<at::Tensor> DiagonalTransform::parameters() const {
  return trainable_ ? std::vector<at::Tensor>{scale_} : std::vector<at::Tensor>{};
}
nlohmann::json DiagonalTransform::describe() const {
  nlohmann::json j = Transform::describe();
  j["trainable"] = trainable_;
  return j;
}
at::Tensor DiagonalTransform::log_abs_det() const {
  return at::log(at::abs(scale_)).sum();
}
void DiagonalTransform::to(at::Device device) {
  scale_ = leaf(scale_.to(device), trainable_);
}
at::Tensor DiagonalTransform::apply_linear(const at::Tensor& x) const {
  return x * like(scale_, x);
}
at::Tensor DiagonalTransform::apply_inverse_linear(const at::Tensor& y) const {
  return y / like(scale_, y);
}
at::Tensor DiagonalTransform::apply_inverse_right(const at::Tensor& w) const {
  return w / like(scale_, w);
}

// ---- Hadamard -------------------------------------------------------------------------------

HadamardTransform::HadamardTransform(int64_t dim, uint64_t seed, bool random_signs_on)
    : HadamardTransform(dim, random_signs_on ? random_signs(dim, seed) : at::ones({dim}, at::kFloat)) {}

HadamardTransform::HadamardTransform(int64_t dim, const at::Tensor& signs)
    : Transform(dim), order_(hadamard_order(dim)) {
  signs_ = check_signs(signs, dim, "hadamard transform");
  base_ = hadamard_matrix(order_.base) / std::sqrt(static_cast<double>(order_.base));
}

at::Tensor HadamardTransform::log_abs_det() const {
  return zero_scalar(signs_.device());
}

void HadamardTransform::to(at::Device device) {
  signs_ = signs_.to(device);
  base_ = base_.to(device);
}

// x H^T / sqrt(d) (transpose = false) or x H / sqrt(d), H = H_{2^k} kron H_m.
at::Tensor HadamardTransform::apply_h(const at::Tensor& x, bool transpose) const {
  const int64_t p2 = order_.power_of_two, m = order_.base;
  auto shape = x.sizes().vec();
  at::Tensor y = x;
  if (m > 1) {
    at::Tensor b = like(base_, x);
    y = at::matmul(y.reshape({-1, p2, m}), transpose ? b : b.t());
  }
  if (p2 > 1) {
    y = y.reshape({-1, p2, m}).transpose(1, 2);
    y = fast_walsh_hadamard(y).transpose(1, 2) * (1.0 / std::sqrt(static_cast<double>(p2)));
  }
  return y.reshape(shape);
}

at::Tensor HadamardTransform::apply_linear(const at::Tensor& x) const {
  return apply_h(x * like(signs_, x), false);
}
at::Tensor HadamardTransform::apply_inverse_linear(const at::Tensor& y) const {
  return apply_h(y, true) * like(signs_, y);
}

// ---- Block Hadamard -------------------------------------------------------------------------

BlockHadamardTransform::BlockHadamardTransform(int64_t dim, int64_t block, uint64_t seed, bool random_signs_on)
    : BlockHadamardTransform(dim, block, random_signs_on ? random_signs(dim, seed) : at::ones({dim}, at::kFloat)) {}

BlockHadamardTransform::BlockHadamardTransform(int64_t dim, int64_t block, const at::Tensor& signs)
    : Transform(dim), inner_(block > 0 ? block : 1, at::ones({block > 0 ? block : 1}, at::kFloat)) {
  if (block <= 0 || dim % block != 0) {
    fail("block Hadamard transform", "block size", "a positive divisor of " + std::to_string(dim),
         std::to_string(block));
  }
  signs_ = check_signs(signs, dim, "block Hadamard transform");
}

at::Tensor BlockHadamardTransform::log_abs_det() const {
  return zero_scalar(signs_.device());
}

void BlockHadamardTransform::to(at::Device device) {
  inner_.to(device);
  signs_ = signs_.to(device);
}

nlohmann::json BlockHadamardTransform::describe() const {
  nlohmann::json j = Transform::describe();
  j["block"] = block();
  return j;
}

at::Tensor BlockHadamardTransform::apply_linear(const at::Tensor& x) const {
  const int64_t b = block();
  at::Tensor y = (x * like(signs_, x)).reshape({-1, dim() / b, b});
  return inner_.forward(y).reshape(x.sizes());
}

at::Tensor BlockHadamardTransform::apply_inverse_linear(const at::Tensor& y) const {
  const int64_t b = block();
  at::Tensor x = inner_.inverse(y.reshape({-1, dim() / b, b})).reshape(y.sizes());
  return x * like(signs_, y);
}

// ---- Dense orthogonal -----------------------------------------------------------------------

OrthogonalTransform::OrthogonalTransform(const at::Tensor& q) : Transform(q.defined() && q.dim() == 2 ? q.size(0) : 0) {
  if (dim() == 0 || q.size(1) != dim()) fail("orthogonal transform", "matrix", "a square matrix", "another shape");
  q_ = q.detach().to(at::kFloat).clone();
  at::Tensor qd = q_.to(at::kDouble);
  const double err = (at::matmul(qd, qd.t()) - at::eye(dim(), qd.options())).abs().max().item<double>();
  if (err > 1e-4) fail("orthogonal transform", "matrix", "Q Q^T = I to 1e-4", "error " + std::to_string(err));
}

std::shared_ptr<OrthogonalTransform> OrthogonalTransform::random(int64_t dim, uint64_t seed) {
  if (dim <= 0) fail("orthogonal transform", "width", "positive", std::to_string(dim));
  std::mt19937_64 rng(seed);
  at::Tensor g = at::empty({dim, dim}, at::kDouble);
  double* d = g.data_ptr<double>();
  const double two_pi = 2 * M_PI;
  for (int64_t i = 0; i < dim * dim; i += 2) {  // Box-Muller: portable across standard libraries
    const double u1 = (static_cast<double>(rng() >> 11) + 1.0) / 9007199254740993.0;
    const double u2 = static_cast<double>(rng() >> 11) / 9007199254740992.0;
    const double r = std::sqrt(-2.0 * std::log(u1));
    d[i] = r * std::cos(two_pi * u2);
    if (i + 1 < dim * dim) d[i + 1] = r * std::sin(two_pi * u2);
  }
  auto [q, r] = at::linalg_qr(g);
  at::Tensor sign = at::sign(r.diagonal());
  sign = at::where(sign.eq(0), at::ones_like(sign), sign);
  return std::make_shared<OrthogonalTransform>((q * sign.unsqueeze(0)).to(at::kFloat));
}

at::Tensor OrthogonalTransform::log_abs_det() const {
  return zero_scalar(q_.device());
}
at::Tensor OrthogonalTransform::apply_linear(const at::Tensor& x) const {
  return at::matmul(x, like(q_, x).t());
}
at::Tensor OrthogonalTransform::apply_inverse_linear(const at::Tensor& y) const {
  return at::matmul(y, like(q_, y));
}

// ---- Learned rotation -----------------------------------------------------------------------

RotationTransform::RotationTransform(int64_t dim, const at::Tensor& base, Map map) : Transform(dim), map_(map) {
  if (dim <= 0) fail("rotation transform", "width", "positive", std::to_string(dim));
  if (base.defined()) {
    base_ = OrthogonalTransform(base).q();  // validates shape and orthogonality
    if (base_.size(0) != dim)
      fail("rotation transform", "base", "width " + std::to_string(dim), std::to_string(base_.size(0)));
  } else {
    base_ = at::eye(dim, at::kFloat);
  }
  g_ = leaf(at::zeros({dim, dim}, at::kFloat), true);
}

at::Tensor RotationTransform::rotation() const {
  return rotation_like(g_);
}

// Q0 M(G - G^T) in x's dtype and device (a float64 fold gets a rotation orthogonal to float64).
at::Tensor RotationTransform::rotation_like(const at::Tensor& x) const {
  at::Tensor g = like(g_, x);
  at::Tensor skew = g - g.t();
  at::Tensor m;
  if (map_ == Map::Exp) {
    m = at::linalg_matrix_exp(skew);
  } else {
    at::Tensor eye = at::eye(dim(), skew.options());
    m = at::linalg_solve(eye + 0.5 * skew, eye - 0.5 * skew);
  }
  return at::matmul(like(base_, x), m);
}

void RotationTransform::recenter() {
  c10::NoGradGuard no_grad;
  base_ = rotation_like(base_).detach();
  g_.zero_();
}

nlohmann::json RotationTransform::describe() const {
  nlohmann::json j = Transform::describe();
  j["map"] = map_ == Map::Exp ? "exp" : "cayley";
  return j;
}

at::Tensor RotationTransform::log_abs_det() const {
  return zero_scalar(g_.device());
}

void RotationTransform::to(at::Device device) {
  base_ = base_.to(device);
  g_ = leaf(g_.to(device), true);
}

void RotationTransform::set_generator(const at::Tensor& g) {
  if (g.sizes() != g_.sizes()) fail("rotation transform", "g", "shape [dim, dim]", "another shape");
  g_ = leaf(g.to(g_.device()), true);
}

at::Tensor RotationTransform::apply_linear(const at::Tensor& x) const {
  return at::matmul(x, rotation_like(x).t());
}
at::Tensor RotationTransform::apply_inverse_linear(const at::Tensor& y) const {
  return at::matmul(y, rotation_like(y));
}

}  // namespace latmix
