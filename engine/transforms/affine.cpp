// LATMiX affine transforms (QR and LU parametrizations) and the Kronecker affine transform.
#include <ATen/ATen.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "latmix/error.h"
#include "latmix/transforms.h"

namespace latmix {

namespace {

at::Tensor like(const at::Tensor& p, const at::Tensor& x) {
  return p.to(x.device(), x.scalar_type());
}

at::Tensor leaf(const at::Tensor& t) {
  at::Tensor out = t.detach().to(at::kFloat).clone();
  out.set_requires_grad(true);
  return out;
}

/// X with X A = B for a triangular A, B [..., d] (rows).
at::Tensor solve_right(const at::Tensor& b, const at::Tensor& a, bool upper, bool unit = false) {
  const int64_t d = b.size(-1);
  at::Tensor x = at::linalg_solve_triangular(a, b.reshape({-1, d}), upper, /*left=*/false, unit);
  return x.reshape(b.sizes());
}

const at::Tensor& find(const NamedTensors& tensors, const std::string& name, at::IntArrayRef shape,
                       const std::string& origin) {
  for (const auto& [n, t] : tensors) {
    if (n != name) continue;
    if (t.sizes() != shape) fail(origin, "tensor '" + name + "'", "shape " + c10::str(shape), c10::str(t.sizes()));
    return t;
  }
  fail(origin, "tensor '" + name + "'", "present", "missing");
}

}  // namespace

// ---- LATMiX affine --------------------------------------------------------------------------

AffineTransform::AffineTransform(int64_t dim, Param param, const at::Tensor& rotation) : Transform(dim), param_(param) {
  if (dim <= 0) fail("affine transform", "width", "positive", std::to_string(dim));
  at::Tensor rot = at::eye(dim, at::kFloat);
  if (rotation.defined()) rot = OrthogonalTransform(rotation).q();  // validates
  if (rot.size(0) != dim)
    fail("affine transform", "rotation", "width " + std::to_string(dim), std::to_string(rot.size(0)));
  v_ = leaf(at::zeros({dim}, at::kFloat));
  if (param_ == Param::QR) {
    q0_ = rot;
    g_ = leaf(at::zeros({dim, dim}, at::kFloat));
    r_ = leaf(at::zeros({dim, dim}, at::kFloat));
    s_ = leaf(at::ones({dim}, at::kFloat));
    return;
  }
  auto [p, l, u] = at::linalg_lu(rot.to(at::kDouble));
  perm_ = p.argmax(1);  // P[i, perm[i]] = 1, so x P^T = x[..., perm]
  l_ = leaf(l.tril(-1));
  u_ = leaf(u.triu(1));
  s_ = leaf(u.diagonal());
}

std::vector<at::Tensor> AffineTransform::parameters() const {
  if (param_ == Param::QR) return {g_, r_, s_, v_};
  return {l_, u_, s_, v_};
}

at::Tensor AffineTransform::log_abs_det() const {
  return at::log(at::abs(s_)).sum();
}

at::Tensor AffineTransform::upper_with_diag() const {
  return (param_ == Param::QR ? r_ : u_).triu(1) + at::diag(s_);
}
at::Tensor AffineTransform::orthogonal(const at::Tensor& like_x) const {
  at::Tensor g = like(g_, like_x);
  return at::matmul(like(q0_, like_x), at::linalg_matrix_exp(g - g.t()));
}
at::Tensor AffineTransform::unit_lower() const {
  return l_.tril(-1) + at::eye(dim(), l_.options().requires_grad(false));
}

// QR: x A^T = (x U'^T) Q^T.  LU: x A^T = ((x U'^T) L^T) P^T.
at::Tensor AffineTransform::apply_linear(const at::Tensor& x) const {
  at::Tensor y = at::matmul(x, like(upper_with_diag(), x).t());
  if (param_ == Param::QR) return at::matmul(y, orthogonal(x).t());
  y = at::matmul(y, like(unit_lower(), x).t());
  return y.index_select(-1, perm_.to(x.device()));
}

// QR: y A^-T = (y Q) U'^-T.  LU: y A^-T = ((y P) L^-T) U'^-T.
at::Tensor AffineTransform::apply_inverse_linear(const at::Tensor& y) const {
  at::Tensor z;
  if (param_ == Param::QR) {
    z = at::matmul(y, orthogonal(y));
  } else {
    at::Tensor inv_perm = at::argsort(perm_).to(y.device());
    z = solve_right(y.index_select(-1, inv_perm), like(unit_lower(), y).t(), /*upper=*/true, /*unit=*/true);
  }
  return solve_right(z, like(upper_with_diag(), y).t(), /*upper=*/false);
}

// QR: w A^-1 = (w U'^-1) Q^T.  LU: w A^-1 = ((w U'^-1) L^-1) P^T.
at::Tensor AffineTransform::apply_inverse_right(const at::Tensor& w) const {
  at::Tensor z = solve_right(w, like(upper_with_diag(), w), /*upper=*/true);
  if (param_ == Param::QR) return at::matmul(z, orthogonal(w).t());
  z = solve_right(z, like(unit_lower(), w), /*upper=*/false, /*unit=*/true);
  return z.index_select(-1, perm_.to(w.device()));
}

void AffineTransform::to(at::Device device) {
  auto move = [&](at::Tensor& t) {
    if (t.defined()) t = t.requires_grad() ? leaf(t.to(device)) : t.to(device);
  };
  for (at::Tensor* t : {&q0_, &g_, &r_, &perm_, &l_, &u_, &s_, &v_}) move(*t);
}

NamedTensors AffineTransform::state() const {
  if (param_ == Param::QR) return {{"q0", q0_}, {"g", g_}, {"r", r_}, {"s", s_}, {"v", v_}};
  return {{"perm", perm_}, {"l", l_}, {"u", u_}, {"s", s_}, {"v", v_}};
}

void AffineTransform::load_state(const NamedTensors& tensors, const std::string& origin) {
  const int64_t d = dim();
  const at::Device device = s_.device();
  s_ = leaf(find(tensors, "s", {d}, origin).to(device));
  v_ = leaf(find(tensors, "v", {d}, origin).to(device));
  if (param_ == Param::QR) {
    q0_ = OrthogonalTransform(find(tensors, "q0", {d, d}, origin)).q().to(device);
    g_ = leaf(find(tensors, "g", {d, d}, origin).to(device));
    r_ = leaf(find(tensors, "r", {d, d}, origin).to(device));
    return;
  }
  at::Tensor perm = find(tensors, "perm", {d}, origin).to(at::kCPU).to(at::kLong);
  if (!std::get<0>(at::sort(perm)).equal(at::arange(d, at::kLong)))
    fail(origin, "tensor 'perm'", "a permutation of 0..d-1", "other values");
  perm_ = perm.to(device);
  l_ = leaf(find(tensors, "l", {d, d}, origin).to(device));
  u_ = leaf(find(tensors, "u", {d, d}, origin).to(device));
}

// ---- Kronecker ------------------------------------------------------------------------------

KroneckerTransform::KroneckerTransform(int64_t d1, int64_t d2, bool with_bias) : Transform(d1 * d2) {
  if (d1 <= 0 || d2 <= 0)
    fail("kronecker transform", "factor sizes", "positive", std::to_string(d1) + "x" + std::to_string(d2));
  a1_ = leaf(at::eye(d1, at::kFloat));
  a2_ = leaf(at::eye(d2, at::kFloat));
  c_ = leaf(at::ones({d1 * d2}, at::kFloat));
  if (with_bias) v_ = leaf(at::zeros({d1 * d2}, at::kFloat));
}

std::shared_ptr<KroneckerTransform> KroneckerTransform::balanced(int64_t dim, bool with_bias) {
  int64_t d1 = 1;
  for (int64_t f = 1; f * f <= dim; ++f) {
    if (dim % f == 0) d1 = f;
  }
  return std::make_shared<KroneckerTransform>(d1, dim / d1, with_bias);
}

std::vector<at::Tensor> KroneckerTransform::parameters() const {
  std::vector<at::Tensor> p{a1_, a2_, c_};
  if (v_.defined()) p.push_back(v_);
  return p;
}

at::Tensor KroneckerTransform::log_abs_det() const {
  at::Tensor l1 = std::get<1>(at::linalg_slogdet(a1_));
  at::Tensor l2 = std::get<1>(at::linalg_slogdet(a2_));
  return static_cast<double>(d2()) * l1 + static_cast<double>(d1()) * l2 + at::log(at::abs(c_)).sum();
}

// x A^T = (x * c) (A1 kron A2)^T: X [.., d1, d2] -> A1 X A2^T.
at::Tensor KroneckerTransform::apply_linear(const at::Tensor& x) const {
  at::Tensor m = (x * like(c_, x)).reshape({-1, d1(), d2()});
  m = at::matmul(at::matmul(like(a1_, x), m), like(a2_, x).t());
  return m.reshape(x.sizes());
}

// y A^-T = [Y -> A1^-1 Y A2^-T] / c.
at::Tensor KroneckerTransform::apply_inverse_linear(const at::Tensor& y) const {
  at::Tensor m = at::linalg_solve(like(a1_, y), y.reshape({-1, d1(), d2()}));
  m = at::linalg_solve(like(a2_, y).t(), m, /*left=*/false);
  return m.reshape(y.sizes()) / like(c_, y);
}

// w A^-1 = (w / c) (A1^-1 kron A2^-1): W -> A1^-T W A2^-1.
at::Tensor KroneckerTransform::apply_inverse_right(const at::Tensor& w) const {
  at::Tensor m = (w / like(c_, w)).reshape({-1, d1(), d2()});
  m = at::linalg_solve(like(a1_, w).t(), m);
  m = at::linalg_solve(like(a2_, w), m, /*left=*/false);
  return m.reshape(w.sizes());
}

void KroneckerTransform::to(at::Device device) {
  for (at::Tensor* t : {&a1_, &a2_, &c_, &v_}) {
    if (t->defined()) *t = leaf(t->to(device));
  }
}

NamedTensors KroneckerTransform::state() const {
  NamedTensors s{{"a1", a1_}, {"a2", a2_}, {"c", c_}};
  if (v_.defined()) s.emplace_back("v", v_);
  return s;
}

void KroneckerTransform::load_state(const NamedTensors& tensors, const std::string& origin) {
  const at::Device device = c_.device();
  a1_ = leaf(find(tensors, "a1", {d1(), d1()}, origin).to(device));
  a2_ = leaf(find(tensors, "a2", {d2(), d2()}, origin).to(device));
  c_ = leaf(find(tensors, "c", {dim()}, origin).to(device));
  if (v_.defined()) v_ = leaf(find(tensors, "v", {dim()}, origin).to(device));
}

nlohmann::json KroneckerTransform::describe() const {
  nlohmann::json j = Transform::describe();
  j["d1"] = d1();
  j["d2"] = d2();
  j["bias"] = v_.defined();
  return j;
}

}  // namespace latmix
