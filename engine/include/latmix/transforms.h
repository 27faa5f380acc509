#pragma once
/// \file transforms.h
/// Room: engine/transforms/ (latmix_engine).
/// Invertible maps of a d-vector that are applied to activations and whose inverse is folded into
/// the following weights (docs/transforms.md has the math, the placements and the bias homes).
///
/// Convention: activations are row vectors (x [..., d], the last dimension is transformed), so
/// "T x = A x + v" is computed as `x @ A^T + v`. Folding the inverse into a Linear weight
/// W [out, in = d] (which computes x W^T + b) gives W' = W A^-1 and b' = b - W A^-1 v, so that
/// W' T(x) + b' = W x + b.
///
/// Every transform keeps its parameters in float32 (double inputs compute in double) on one
/// device; forward() and inverse() return the input's dtype. Trainable transforms expose their
/// leaf tensors through parameters() (requires_grad set); the others return none.

#include <c10/core/GradMode.h>
#include <ATen/ATen.h>

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace latmix {

/// Named tensors of a transform (what goes into its safetensors file).
using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

/// What a transform does to the geometry: how far from a rotation it is.
struct TransformReport {
  std::string kind;
  int64_t dim = 0;
  double condition_number = 1.0;     ///< sigma_max / sigma_min of A (1 for orthogonal transforms)
  double log_abs_det = 0.0;          ///< log|det A| (0 for orthogonal transforms)
  double orthogonality_error = 0.0;  ///< max |A A^T - I| (computed densely; 0 when orthogonal by construction)
  double bias_norm = 0.0;            ///< ||v||_2 (0 without a bias)
};

/// An invertible affine map T(x) = x A^T + v over the last dimension.
class Transform {
 public:
  explicit Transform(int64_t dim) : dim_(dim) {}
  virtual ~Transform() = default;

  /// Stable name of the kind ("identity", "diagonal", "hadamard", "block_hadamard", "orthogonal",
  /// "rotation", "affine_qr", "affine_lu", "kronecker").
  virtual std::string kind() const = 0;
  int64_t dim() const { return dim_; }

  /// T(x) = x A^T + v. \throws latmix::Error when the last dimension is not dim().
  at::Tensor forward(const at::Tensor& x) const;
  /// T^-1(y) = (y - v) A^-T.
  at::Tensor inverse(const at::Tensor& y) const;
  /// The inverse folded into a Linear weight: w A^-1 for rows w [..., dim] (W [out, dim]);
  /// computed in float64 and returned in w's dtype.
  at::Tensor fold_into_reader(const at::Tensor& w) const;
  /// The transform applied to a Linear weight's outputs: A w for columns (W [dim, in] -> A W),
  /// or A b for a bias b [dim]; computed in float64.
  at::Tensor fold_into_writer(const at::Tensor& w) const;

  /// The dense matrix A [dim, dim] (float32; O(dim^2) memory).
  at::Tensor matrix() const;
  /// The dense inverse A^-1 [dim, dim], computed through the transform's own inverse.
  at::Tensor inverse_matrix() const;
  /// The bias v [dim], or an undefined tensor when the transform has none.
  virtual at::Tensor bias() const { return {}; }
  /// True when A is orthogonal by construction and there is no bias.
  virtual bool is_orthogonal() const { return false; }
  /// Trainable leaf tensors (requires_grad). Empty for fixed transforms.
  virtual std::vector<at::Tensor> parameters() const { return {}; }
  /// log|det A| as a 0-d float tensor; differentiable for trainable transforms (the LATMiX
  /// volume term is this value: sum_i log|s_i|). The default computes it densely.
  virtual at::Tensor log_abs_det() const;
  /// Condition number, log|det|, distance from orthogonality and bias norm (dense: O(dim^3)).
  TransformReport report() const;

  /// Moves the parameters and buffers to `device` (trainable ones stay leaves).
  virtual void to(at::Device device) = 0;
  /// The tensors that define the transform (parameters and fixed buffers such as signs).
  virtual NamedTensors state() const = 0;
  /// {"kind", "dim", and the kind's options}; with state() enough to rebuild it
  /// (see transform_from_state()).
  virtual nlohmann::json describe() const;

 protected:
  /// x A^T (no bias), x [..., dim] in the compute dtype.
  virtual at::Tensor apply_linear(const at::Tensor& x) const = 0;
  /// y A^-T.
  virtual at::Tensor apply_inverse_linear(const at::Tensor& y) const = 0;
  /// w A^-1. The default uses the dense inverse; orthogonal transforms use apply_linear.
  virtual at::Tensor apply_inverse_right(const at::Tensor& w) const;
  /// Throws latmix::Error unless x.size(-1) == dim().
  void check_width(const at::Tensor& x, const char* what) const;

 private:
  int64_t dim_;
};

using TransformPtr = std::shared_ptr<Transform>;

/// T(x) = x.
class IdentityTransform : public Transform {
 public:
  explicit IdentityTransform(int64_t dim) : Transform(dim) {}
  std::string kind() const override { return "identity"; }
  bool is_orthogonal() const override { return true; }
  at::Tensor log_abs_det() const override;
  void to(at::Device) override {}
  NamedTensors state() const override { return {}; }

 protected:
  at::Tensor apply_linear(const at::Tensor& x) const override { return x; }
  at::Tensor apply_inverse_linear(const at::Tensor& y) const override { return y; }
  at::Tensor apply_inverse_right(const at::Tensor& w) const override { return w; }
};

/// A = diag(scale): per-channel scaling. Trainable (scale is a leaf tensor).
class DiagonalTransform : public Transform {
 public:
  /// scale [dim], every entry non-zero. \throws latmix::Error otherwise.
  explicit DiagonalTransform(const at::Tensor& scale, bool trainable = false);
  /// SmoothQuant: s_j = max|X_j|^alpha / max|W_j|^(1-alpha) from the per-input-channel absolute
  /// maxima of the activations and of the weights that read them (clamped to >= 1e-5);
  /// the activation is divided by s (A = diag(1/s)) and the weight multiplied by it.
  static std::shared_ptr<DiagonalTransform> smoothquant(const at::Tensor& act_absmax, const at::Tensor& weight_absmax,
                                                        double alpha = 0.5);
  std::string kind() const override { return "diagonal"; }
  const at::Tensor& scale() const { return scale_; }
  std::vector<at::Tensor> parameters() const override;
  at::Tensor log_abs_det() const override;
  void to(at::Device device) override;
  NamedTensors state() const override { return {{"scale", scale_}}; }
  nlohmann::json describe() const override;

 protected:
  at::Tensor apply_linear(const at::Tensor& x) const override;
  at::Tensor apply_inverse_linear(const at::Tensor& y) const override;
  at::Tensor apply_inverse_right(const at::Tensor& w) const override;

 private:
  at::Tensor scale_;
  bool trainable_;
};

/// Which widths a full Hadamard transform supports, and how.
struct HadamardOrder {
  int64_t power_of_two = 1;  ///< 2^k, applied by the fast Walsh-Hadamard transform
  int64_t base = 1;          ///< m, applied as a dense m x m matrix (1 when dim is a power of two)
  std::string construction;  ///< "sylvester", "paley1(q)" or "paley2(q)"
};

/// Decomposes d = 2^k * m with m = 1 or a base order that Paley I (m - 1 a prime power
/// = 3 mod 4) or Paley II (m/2 - 1 a prime power = 1 mod 4) constructs, choosing the smallest such m.
/// \throws latmix::Error for any other d, saying what is supported.
HadamardOrder hadamard_order(int64_t dim);

/// The unnormalized Hadamard matrix H [n, n] (entries +-1, H H^T = n I) of a supported order.
at::Tensor hadamard_matrix(int64_t n);

/// Every supported width <= limit that is not a power of two (12, 20, 24, 28, 36, 40, 44, ...).
std::vector<int64_t> supported_hadamard_widths(int64_t limit);

/// In-place-free fast Walsh-Hadamard transform along the last dimension (a power of two),
/// unnormalized: x H for the Sylvester H. O(d log d).
at::Tensor fast_walsh_hadamard(const at::Tensor& x);

/// A = H_d diag(signs) / sqrt(d): a full-width Hadamard with random signs (QuaRot). H_d is
/// H_{2^k} (Sylvester, applied by the fast transform) kron H_m (see hadamard_order()).
class HadamardTransform : public Transform {
 public:
  /// Random +-1 signs from `seed` (all +1 when random_signs is false).
  HadamardTransform(int64_t dim, uint64_t seed, bool random_signs = true);
  /// Explicit signs [dim] of +-1.
  HadamardTransform(int64_t dim, const at::Tensor& signs);
  std::string kind() const override { return "hadamard"; }
  bool is_orthogonal() const override { return true; }
  at::Tensor log_abs_det() const override;
  const at::Tensor& signs() const { return signs_; }
  const HadamardOrder& order() const { return order_; }
  void to(at::Device device) override;
  NamedTensors state() const override { return {{"signs", signs_}}; }

 protected:
  at::Tensor apply_linear(const at::Tensor& x) const override;
  at::Tensor apply_inverse_linear(const at::Tensor& y) const override;
  at::Tensor apply_inverse_right(const at::Tensor& w) const override { return apply_linear(w); }

 private:
  at::Tensor apply_h(const at::Tensor& x, bool transpose) const;
  HadamardOrder order_;
  at::Tensor signs_;
  at::Tensor base_;  // H_m / sqrt(m), float32
};

/// Block-diagonal Hadamard: each aligned block of `block` channels (the MX block, 32 by
/// default) is rotated by its own normalized Hadamard with random signs (MR-GPTQ). An outlier's
/// energy stays inside its MX block.
class BlockHadamardTransform : public Transform {
 public:
  /// \throws latmix::Error when dim is not a multiple of block or block is not a supported order.
  BlockHadamardTransform(int64_t dim, int64_t block, uint64_t seed, bool random_signs = true);
  BlockHadamardTransform(int64_t dim, int64_t block, const at::Tensor& signs);
  std::string kind() const override { return "block_hadamard"; }
  bool is_orthogonal() const override { return true; }
  at::Tensor log_abs_det() const override;
  int64_t block() const { return inner_.dim(); }
  const at::Tensor& signs() const { return signs_; }
  void to(at::Device device) override;
  NamedTensors state() const override { return {{"signs", signs_}}; }
  nlohmann::json describe() const override;

 protected:
  at::Tensor apply_linear(const at::Tensor& x) const override;
  at::Tensor apply_inverse_linear(const at::Tensor& y) const override;
  at::Tensor apply_inverse_right(const at::Tensor& w) const override { return apply_linear(w); }

 private:
  HadamardTransform inner_;  // dim = block, all signs +1
  at::Tensor signs_;         // [dim]
};

/// A fixed dense orthogonal matrix Q (A = Q).
class OrthogonalTransform : public Transform {
 public:
  /// \throws latmix::Error when q is not square or not orthogonal to 1e-4.
  explicit OrthogonalTransform(const at::Tensor& q);
  /// Q of the QR decomposition of a seeded Gaussian matrix, with R's diagonal made positive
  /// (Haar-distributed; the same seed gives the same matrix on every platform).
  static std::shared_ptr<OrthogonalTransform> random(int64_t dim, uint64_t seed);
  std::string kind() const override { return "orthogonal"; }
  bool is_orthogonal() const override { return true; }
  at::Tensor log_abs_det() const override;
  const at::Tensor& q() const { return q_; }
  void to(at::Device device) override { q_ = q_.to(device); }
  NamedTensors state() const override { return {{"q", q_}}; }

 protected:
  at::Tensor apply_linear(const at::Tensor& x) const override;
  at::Tensor apply_inverse_linear(const at::Tensor& y) const override;
  at::Tensor apply_inverse_right(const at::Tensor& w) const override { return apply_linear(w); }

 private:
  at::Tensor q_;
};

/// A learned rotation A = Q0 M(G - G^T): orthogonal by construction, trainable through G, where
/// the map M of the skew-symmetric S = G - G^T is the exponential exp(S) or the Cayley transform
/// (I + S/2)^-1 (I - S/2). G starts at zero. With recenter() after every optimizer step
/// (Q0 <- A, G <- 0) a gradient step on G is a retraction along the Riemannian gradient: with the
/// Cayley map that is SpinQuant's Cayley SGD.
class RotationTransform : public Transform {
 public:
  enum class Map { Exp, Cayley };
  /// base: the starting rotation Q0 [dim, dim] (identity when undefined).
  RotationTransform(int64_t dim, const at::Tensor& base = {}, Map map = Map::Exp);
  Map map() const { return map_; }
  /// Q0 <- the current rotation, G <- 0 (under no-grad; G stays the same leaf tensor, so an
  /// optimizer holding it keeps working).
  void recenter();
  nlohmann::json describe() const override;
  std::string kind() const override { return "rotation"; }
  bool is_orthogonal() const override { return true; }
  at::Tensor log_abs_det() const override;
  std::vector<at::Tensor> parameters() const override { return {g_}; }
  const at::Tensor& generator() const { return g_; }
  /// Q0 exp(G - G^T) (differentiable).
  at::Tensor rotation() const;
  void to(at::Device device) override;
  NamedTensors state() const override { return {{"base", base_}, {"g", g_}}; }
  /// Restores G (used by load_transforms).
  void set_generator(const at::Tensor& g);

 protected:
  at::Tensor apply_linear(const at::Tensor& x) const override;
  at::Tensor apply_inverse_linear(const at::Tensor& y) const override;
  at::Tensor apply_inverse_right(const at::Tensor& w) const override { return apply_linear(w); }

 private:
  at::Tensor rotation_like(const at::Tensor& x) const;
  at::Tensor base_, g_;
  Map map_ = Map::Exp;
};

/// LATMiX's learned affine transform T(x) = A x + v with two parametrizations:
///  - QR: A = Q (R + diag s), Q = Q0 exp(G - G^T), R strictly upper triangular;
///  - LU: A = P L (U + diag s), P a fixed permutation, L unit lower, U strictly upper.
/// log|det A| = sum_i log|s_i| (Q, P and L have |det| 1). Inverses use triangular solves.
/// Parameters (all leaves): QR {g, r, s, v}, LU {l, u, s, v}; only the triangular parts of
/// r, l, u are used (the rest is masked, so its gradient is zero).
class AffineTransform : public Transform {
 public:
  enum class Param { QR, LU };
  /// Starts at the rotation `rotation` (identity when undefined) with v = 0: QR takes
  /// Q0 = rotation, R = 0, s = 1; LU takes P L U = rotation (partial pivoting) and s = diag(U).
  AffineTransform(int64_t dim, Param param, const at::Tensor& rotation = {});
  std::string kind() const override { return param_ == Param::QR ? "affine_qr" : "affine_lu"; }
  Param param() const { return param_; }
  at::Tensor bias() const override { return v_; }
  std::vector<at::Tensor> parameters() const override;
  /// sum_i log|s_i| (differentiable): the LATMiX volume term.
  at::Tensor log_abs_det() const override;
  /// The diagonal s and the bias v (leaves; modify under c10::NoGradGuard).
  const at::Tensor& diag() const { return s_; }
  const at::Tensor& bias_param() const { return v_; }
  void to(at::Device device) override;
  NamedTensors state() const override;
  /// Restores every tensor named by state(); throws latmix::Error on a missing or misshaped one.
  void load_state(const NamedTensors& tensors, const std::string& origin);

 protected:
  at::Tensor apply_linear(const at::Tensor& x) const override;
  at::Tensor apply_inverse_linear(const at::Tensor& y) const override;
  at::Tensor apply_inverse_right(const at::Tensor& w) const override;

 private:
  at::Tensor upper_with_diag() const;                     // R + diag s (or U + diag s)
  at::Tensor orthogonal(const at::Tensor& like_x) const;  // QR: Q0 exp(G - G^T) in x's dtype/device
  at::Tensor unit_lower() const;                          // LU: L
  Param param_;
  at::Tensor q0_, g_, r_;    // QR
  at::Tensor perm_, l_, u_;  // LU (perm_: int64 [dim], x P^T = x[..., perm])
  at::Tensor s_, v_;
};

/// FlatQuant-style Kronecker affine map: A = (A1 kron A2) diag(c), T(x) = x A^T + v, applied to
/// x reshaped [..., d1, d2] as A1 X A2^T (the d x d matrix is never formed). A1 [d1, d1],
/// A2 [d2, d2], c [d1*d2] and v are trainable; A1 and A2 start at the identity, c at 1, v at 0.
class KroneckerTransform : public Transform {
 public:
  KroneckerTransform(int64_t d1, int64_t d2, bool with_bias = false);
  /// Splits dim into d1 x d2 with d1 the largest divisor <= sqrt(dim).
  static std::shared_ptr<KroneckerTransform> balanced(int64_t dim, bool with_bias = false);
  std::string kind() const override { return "kronecker"; }
  int64_t d1() const { return a1_.size(0); }
  int64_t d2() const { return a2_.size(0); }
  at::Tensor bias() const override { return v_; }
  std::vector<at::Tensor> parameters() const override;
  /// d2 log|det A1| + d1 log|det A2| + sum log|c| (differentiable).
  at::Tensor log_abs_det() const override;
  void to(at::Device device) override;
  NamedTensors state() const override;
  void load_state(const NamedTensors& tensors, const std::string& origin);
  nlohmann::json describe() const override;

 protected:
  at::Tensor apply_linear(const at::Tensor& x) const override;
  at::Tensor apply_inverse_linear(const at::Tensor& y) const override;
  at::Tensor apply_inverse_right(const at::Tensor& w) const override;

 private:
  at::Tensor a1_, a2_, c_, v_;
};

/// Rebuilds a transform from describe() and state() (the inverse of both).
/// \throws latmix::Error naming `origin` for an unknown kind or a missing/misshaped tensor.
TransformPtr transform_from_state(const nlohmann::json& description, const NamedTensors& tensors,
                                  const std::string& origin);

}  // namespace latmix
