// Hadamard matrices: Sylvester powers of two, Paley I and Paley II over GF(q) for prime powers q,
// and the decomposition d = 2^k * m used by the full-width transform.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>

#include "latmix/error.h"
#include "latmix/transforms.h"
#include "transforms/hadamard_detail.h"

namespace latmix {

namespace {

// Largest base order we build as a dense matrix (the transform multiplies by it per row).
constexpr int64_t kMaxBase = 8192;

/// Returns p when q = p^k for a prime p (k >= 1), else 0.
int64_t prime_of_power(int64_t q) {
  if (q < 2) return 0;
  int64_t p = 0;
  for (int64_t f = 2; f * f <= q; ++f) {
    if (q % f == 0) {
      p = f;
      break;
    }
  }
  if (p == 0) return q;  // q is prime
  int64_t r = q;
  while (r % p == 0) r /= p;
  return r == 1 ? p : 0;
}

/// GF(p^k): elements are integers whose base-p digits are polynomial coefficients (low first).
class GaloisField {
 public:
  GaloisField(int64_t p, int64_t k) : p_(p), k_(k) {
    q_ = 1;
    for (int64_t i = 0; i < k; ++i) q_ *= p;
    if (k_ > 1) modulus_ = find_irreducible();
    squares_.assign(static_cast<size_t>(q_), false);
    for (int64_t x = 1; x < q_; ++x) squares_[static_cast<size_t>(mul(x, x))] = true;
  }
  int64_t size() const { return q_; }
  /// Quadratic character: 0 for 0, 1 for a non-zero square, -1 otherwise.
  int chi(int64_t x) const { return x == 0 ? 0 : (squares_[static_cast<size_t>(x)] ? 1 : -1); }
  int64_t sub(int64_t a, int64_t b) const {
    if (k_ == 1) return ((a - b) % p_ + p_) % p_;
    int64_t out = 0, scale = 1;
    for (int64_t i = 0; i < k_; ++i, a /= p_, b /= p_, scale *= p_) out += (((a % p_) - (b % p_) + p_) % p_) * scale;
    return out;
  }

 private:
  using Poly = std::vector<int64_t>;
  Poly digits(int64_t x, int64_t n) const {
    Poly d(static_cast<size_t>(n), 0);
    for (int64_t i = 0; i < n; ++i, x /= p_) d[static_cast<size_t>(i)] = x % p_;
    return d;
  }
  // Remainder of a by the monic polynomial m (coefficients low first, m.back() == 1).
  Poly rem(Poly a, const Poly& m) const {
    const size_t dm = m.size() - 1;
    for (size_t i = a.size(); i-- > dm;) {
      const int64_t c = a[i] % p_;
      if (c == 0) continue;
      for (size_t j = 0; j <= dm; ++j) a[i - dm + j] = ((a[i - dm + j] - c * m[j]) % p_ + p_) % p_;
    }
    a.resize(dm);
    return a;
  }
  int64_t mul(int64_t a, int64_t b) const {
    if (k_ == 1) return (a * b) % p_;
    Poly x = digits(a, k_), y = digits(b, k_), prod(static_cast<size_t>(2 * k_ - 1), 0);
    for (size_t i = 0; i < x.size(); ++i)
      for (size_t j = 0; j < y.size(); ++j) prod[i + j] = (prod[i + j] + x[i] * y[j]) % p_;
    Poly r = rem(prod, modulus_);
    int64_t out = 0;
    for (size_t i = r.size(); i-- > 0;) out = out * p_ + r[i];
    return out;
  }
  // A monic polynomial of degree k with no monic factor of degree 1..k/2.
  Poly find_irreducible() const {
    for (int64_t low = 0; low < q_; ++low) {
      Poly f = digits(low, k_);
      f.push_back(1);
      if (f[0] == 0) continue;
      bool irreducible = true;
      for (int64_t deg = 1; deg <= k_ / 2 && irreducible; ++deg) {
        int64_t count = 1;
        for (int64_t i = 0; i < deg; ++i) count *= p_;
        for (int64_t g = 0; g < count && irreducible; ++g) {
          Poly gp = digits(g, deg);
          gp.push_back(1);
          Poly r = rem(f, gp);
          irreducible = std::any_of(r.begin(), r.end(), [](int64_t c) { return c != 0; });
        }
      }
      if (irreducible) return f;
    }
    throw std::logic_error("no irreducible polynomial found");
  }

  int64_t p_, k_, q_ = 1;
  Poly modulus_;
  std::vector<bool> squares_;
};

GaloisField field_of(int64_t q) {
  const int64_t p = prime_of_power(q);
  int64_t k = 0;
  for (int64_t r = q; r > 1; r /= p) ++k;
  return GaloisField(p, k);
}

/// Paley I: q = 3 mod 4, order q + 1. H = I + S with S = [[0, 1^T], [-1, Q]], Q_ab = chi(a - b).
at::Tensor paley1(int64_t q) {
  const GaloisField f = field_of(q);
  const int64_t n = q + 1;
  at::Tensor h = at::zeros({n, n}, at::kFloat);
  float* d = h.data_ptr<float>();
  for (int64_t j = 1; j < n; ++j) {
    d[j] = 1;       // row 0
    d[j * n] = -1;  // column 0
  }
  for (int64_t a = 0; a < q; ++a)
    for (int64_t b = 0; b < q; ++b) d[(a + 1) * n + b + 1] = static_cast<float>(f.chi(f.sub(a, b)));
  return h + at::eye(n, at::kFloat);
}

/// Paley II: q = 1 mod 4, order 2(q + 1). C = [[0, 1^T], [1, Q]] (symmetric conference matrix);
/// every entry of C becomes a 2x2 block: 0 -> [[1, -1], [-1, -1]], +-1 -> +-[[1, 1], [1, -1]].
at::Tensor paley2(int64_t q) {
  const GaloisField f = field_of(q);
  const int64_t n = q + 1;
  at::Tensor c = at::zeros({n, n}, at::kFloat);
  float* d = c.data_ptr<float>();
  for (int64_t j = 1; j < n; ++j) d[j] = d[j * n] = 1;
  for (int64_t a = 0; a < q; ++a)
    for (int64_t b = 0; b < q; ++b) d[(a + 1) * n + b + 1] = static_cast<float>(f.chi(f.sub(a, b)));
  at::Tensor h2 = at::tensor({1.f, 1.f, 1.f, -1.f}).view({2, 2});
  at::Tensor zero_block = at::tensor({1.f, -1.f, -1.f, -1.f}).view({2, 2});
  return at::kron(c, h2) + at::kron(at::eye(n, at::kFloat), zero_block);
}

/// "paley1(q)" / "paley2(q)" when m is built by a Paley construction, else "".
std::string paley_construction(int64_t m) {
  if (m % 4 != 0) return {};
  if ((m - 1) % 4 == 3 && prime_of_power(m - 1) != 0) return "paley1(" + std::to_string(m - 1) + ")";
  const int64_t q = m / 2 - 1;
  if (q % 4 == 1 && prime_of_power(q) != 0) return "paley2(" + std::to_string(q) + ")";
  return {};
}

at::Tensor sylvester(int64_t n) {
  at::Tensor h = at::ones({1, 1}, at::kFloat);
  at::Tensor h2 = at::tensor({1.f, 1.f, 1.f, -1.f}).view({2, 2});
  while (h.size(0) < n) h = at::kron(h2, h);
  return h;
}

bool is_power_of_two(int64_t n) {
  return n > 0 && (n & (n - 1)) == 0;
}

std::optional<HadamardOrder> try_order(int64_t dim) {
  if (is_power_of_two(dim)) return HadamardOrder{dim, 1, "sylvester"};
  int64_t two_power = 1;
  while ((dim / two_power) % 2 == 0) two_power *= 2;
  const int64_t odd = dim / two_power;
  for (int64_t j = 4; j <= two_power && odd * j <= kMaxBase; j *= 2) {
    const std::string how = paley_construction(odd * j);
    if (!how.empty()) return HadamardOrder{dim / (odd * j), odd * j, how};
  }
  return std::nullopt;
}

std::string unsupported_message(int64_t dim) {
  std::ostringstream os;
  os << "Hadamard transform of width " << dim << " is not supported; supported widths are 2^k and 2^k*m for "
     << "a base order m <= " << kMaxBase << " built by Paley I (m-1 a prime power = 3 mod 4) or Paley II "
     << "(m/2-1 a prime power = 1 mod 4); widths up to 200 other than powers of two: ";
  const auto bases = supported_hadamard_widths(200);
  for (size_t i = 0; i < bases.size(); ++i) os << (i ? ", " : "") << bases[i];
  os << " (QuaRot's 156 and 172 are not among them: use 312*2^k and 344*2^k)";
  return os.str();
}

}  // namespace

std::vector<int64_t> supported_hadamard_widths(int64_t limit) {
  std::vector<int64_t> out;
  for (int64_t m = 12; m <= limit; m += 4) {
    if (is_power_of_two(m)) continue;
    if (try_order(m)) out.push_back(m);
  }
  return out;
}

HadamardOrder hadamard_order(int64_t dim) {
  if (dim < 1) fail("hadamard", "width", "a positive width", std::to_string(dim));
  auto order = try_order(dim);
  if (!order) throw Error(unsupported_message(dim));
  return *order;
}

at::Tensor hadamard_matrix(int64_t n) {
  static std::mutex mutex;
  static std::map<int64_t, at::Tensor> cache;
  const HadamardOrder order = hadamard_order(n);
  std::lock_guard<std::mutex> lock(mutex);
  auto it = cache.find(n);
  if (it != cache.end()) return it->second;
  at::Tensor base = at::ones({1, 1}, at::kFloat);
  if (order.base > 1) {
    const std::string& c = order.construction;
    const int64_t q = std::stoll(c.substr(7, c.size() - 8));
    base = c.rfind("paley1", 0) == 0 ? paley1(q) : paley2(q);
  }
  at::Tensor h = order.power_of_two > 1 ? at::kron(sylvester(order.power_of_two), base) : base;
  cache.emplace(n, h);
  return h;
}

namespace hadamard_detail {

at::Tensor butterflies_aten(const at::Tensor& x) {
  const int64_t n = x.size(-1);
  auto shape = x.sizes().vec();
  at::Tensor y = x.reshape({-1, n});
  for (int64_t h = 1; h < n; h *= 2) {
    at::Tensor v = y.view({-1, n / (2 * h), 2, h});
    at::Tensor a = v.select(2, 0), b = v.select(2, 1);
    y = at::stack({a + b, a - b}, 2).reshape({-1, n});
  }
  return y.view(shape);
}

namespace {

// The same butterflies as butterflies_aten, each row in place in one pass per stage: (a, b) ->
// (a + b, a - b), one rounding each, in the same order, so the bits are the same; no tensor is
// allocated per stage (ATen's chain allocated two per stage, and dominated folding a block
// Hadamard into the weights on the CPU).
template <typename T>
void butterflies_rows(T* data, int64_t rows, int64_t n) {
  at::parallel_for(0, rows, std::max<int64_t>(1, 16384 / n), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      T* p = data + r * n;
      for (int64_t h = 1; h < n; h *= 2) {
        for (int64_t i = 0; i < n; i += 2 * h) {
          T* a = p + i;
          T* b = p + i + h;
          for (int64_t j = 0; j < h; ++j) {
            const T u = a[j], v = b[j];
            a[j] = u + v;
            b[j] = u - v;
          }
        }
      }
    }
  });
}

}  // namespace

at::Tensor butterflies_host(const at::Tensor& x) {
  const int64_t n = x.size(-1);
  // One copy: contiguous() already copies a strided view (apply_h passes a transposed one).
  at::Tensor y = x.contiguous();
  if (y.is_alias_of(x)) y = y.clone();
  const int64_t rows = n > 0 ? y.numel() / n : 0;
  if (y.scalar_type() == at::kDouble) {
    butterflies_rows(y.data_ptr<double>(), rows, n);
  } else {
    butterflies_rows(y.data_ptr<float>(), rows, n);
  }
  return y;
}

}  // namespace hadamard_detail

at::Tensor fast_walsh_hadamard(const at::Tensor& x) {
  const int64_t n = x.size(-1);
  if (!is_power_of_two(n)) fail("fast_walsh_hadamard", "width", "a power of two", std::to_string(n));
  const bool host = x.device().is_cpu() && (x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble) &&
                    !(x.requires_grad() && at::GradMode::is_enabled());
  return host ? hadamard_detail::butterflies_host(x) : hadamard_detail::butterflies_aten(x);
}

}  // namespace latmix
