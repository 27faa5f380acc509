// Packed MX data: encode to uint8 codes + scales, decode, nibble packing, GGUF MXFP4 blocks.
#include <cmath>
#include <limits>

#include "latmix/error.h"
#include "latmix/tensor_io.h"
#include "latmix/mx.h"
#include "mx/mx_internal.h"

namespace latmix {

namespace {

// The element value of every code, as fp32 (index = code).
at::Tensor element_table(ElementFormat f, const at::Device& device) {
  const int count = 1 << element_info(f).bits;
  at::Tensor t = at::empty({count}, at::kFloat);
  float* p = t.data_ptr<float>();
  for (int c = 0; c < count; ++c) p[c] = static_cast<float>(element_decode(f, static_cast<uint8_t>(c)));
  return t.to(device);
}

// The scale value of every scale code, as fp32.
at::Tensor scale_table(const MxPacked& m, const at::Device& device) {
  at::Tensor t = at::empty({256}, at::kFloat);
  float* p = t.data_ptr<float>();
  for (int c = 0; c < 256; ++c) {
    const auto code = static_cast<uint8_t>(c);
    if (m.format.scale_type == ScaleType::E8M0) {
      p[c] = static_cast<float>(e8m0_decode(code));
    } else {
      const float sb = static_cast<float>(element_decode(ElementFormat::E4M3, static_cast<uint8_t>(code & 0x7F)));
      p[c] = m.format.tensor_scale ? sb * m.tensor_scale : sb;
    }
  }
  return t.to(device);
}

at::Tensor lookup(const at::Tensor& table, const at::Tensor& codes) {
  return table.index_select(0, codes.reshape({-1}).to(at::kLong)).view(codes.sizes());
}

void check_packed(const MxPacked& m, int64_t n, const std::vector<int64_t>& lead) {
  const char* what = "MX packed data";
  if (m.codes.scalar_type() != at::kByte || m.scales.scalar_type() != at::kByte) {
    fail("", what, "uint8 codes and scales", std::string(c10::toString(m.codes.scalar_type())) + " / " +
                                                 std::string(c10::toString(m.scales.scalar_type())));
  }
  std::vector<int64_t> want_codes = lead, want_scales = lead;
  want_codes.push_back(m.nibbles ? (n + 1) / 2 : n);
  want_scales.push_back((n + m.format.block - 1) / m.format.block);
  if (m.codes.sizes().vec() != want_codes) {
    fail("", "MX codes", "shape " + shape_to_string(want_codes), shape_to_string(m.codes.sizes()));
  }
  if (m.scales.sizes().vec() != want_scales) {
    fail("", "MX scales", "shape " + shape_to_string(want_scales), shape_to_string(m.scales.sizes()));
  }
}

}  // namespace

at::Tensor pack_nibbles(const at::Tensor& codes) {
  const int64_t n = codes.size(-1);
  at::Tensor c = codes.to(at::kByte);
  if (n % 2) c = at::constant_pad_nd(c, {0, 1}, 0);
  std::vector<int64_t> pairs = c.sizes().vec();
  pairs.back() = (n + 1) / 2;
  pairs.push_back(2);
  c = c.reshape(pairs);
  return at::bitwise_or(c.select(-1, 0).bitwise_and(15), c.select(-1, 1).bitwise_and(15) * 16).contiguous();
}

at::Tensor unpack_nibbles(const at::Tensor& packed, int64_t count) {
  const at::Tensor low = packed.bitwise_and(15);
  const at::Tensor high = at::bitwise_right_shift(packed, 4);
  at::Tensor both = at::stack({low, high}, -1);
  std::vector<int64_t> flat = packed.sizes().vec();
  flat.back() *= 2;
  return both.reshape(flat).narrow(-1, 0, count).contiguous();
}

MxPacked mx_encode(const at::Tensor& x, const MxFormat& format, int64_t axis, bool pack) {
  mx_detail::require_floating(x, "MX encode input");
  format.validate();
  MxPacked m;
  m.format = format;
  m.shape = x.sizes().vec();
  m.axis = mx_detail::normalize_axis(x, axis);
  m.nibbles = pack && format.is_4bit();
  // CUDA inputs are encoded by the fused kernel on the device (codes and scales stay there, 4-bit
  // codes packed in the same pass); everything else by the CPU encoder. Same codes bit for bit.
  const bool on_gpu = x.is_cuda() && mx_cuda_kernel_built();
  const at::Tensor xm = on_gpu ? x.detach().movedim(m.axis, -1).contiguous()
                               : x.detach().to(at::kCPU).to(at::kFloat).movedim(m.axis, -1).contiguous();
  const std::vector<int64_t> lead(xm.sizes().begin(), xm.sizes().end() - 1);
  const int64_t n = xm.size(-1);
  const bool nv = format.scale_type == ScaleType::E4M3;
  m.tensor_scale = nv && format.tensor_scale ? mx_detail::nvfp4_tensor_scale(xm.to(at::kFloat)) : 1.0f;
  at::Tensor codes, scales;
  if (on_gpu) {
    mx_detail::encode_rows_cuda(xm.reshape({-1, n}), format, m.tensor_scale, codes, scales, m.nibbles);
  } else {
    mx_detail::encode_rows_cpu(xm.reshape({-1, n}), format, m.tensor_scale, codes, scales);
  }
  std::vector<int64_t> cshape = lead, sshape = lead;
  cshape.push_back(codes.size(1));
  sshape.push_back(scales.size(1));
  m.codes = codes.view(cshape);
  m.scales = scales.view(sshape);
  if (m.nibbles && !on_gpu) m.codes = pack_nibbles(m.codes);
  return m;
}

namespace mx_detail {

at::Tensor scale_values(const MxPacked& m) { return lookup(scale_table(m, m.scales.device()), m.scales); }

}  // namespace mx_detail

at::Tensor mx_decode(const MxPacked& m, at::ScalarType dtype) {
  m.format.validate();
  if (m.shape.empty() || m.axis < 0 || m.axis >= static_cast<int64_t>(m.shape.size())) {
    fail("", "MX packed data", "a shape of at least one dimension and an axis inside it",
         shape_to_string(m.shape) + ", axis " + std::to_string(m.axis));
  }
  std::vector<int64_t> moved = m.shape;
  const int64_t n = moved[static_cast<size_t>(m.axis)];
  moved.erase(moved.begin() + m.axis);
  const std::vector<int64_t> lead = moved;
  moved.push_back(n);
  check_packed(m, n, lead);
  if (m.codes.is_cuda() && mx_cuda_kernel_built()) {
    // Unpacking and decoding in one kernel on the device: the same fp32 products as below.
    int64_t rows = 1;
    for (int64_t d : lead) rows *= d;
    const at::Tensor codes2d = m.codes.reshape({rows, m.codes.size(-1)});
    const at::Tensor scales2d = m.scales.reshape({rows, m.scales.size(-1)});
    const at::Tensor out =
        mx_detail::decode_rows_cuda(codes2d, scales2d, m.format, m.tensor_scale, n, m.nibbles, dtype);
    return out.view(moved).movedim(-1, m.axis).contiguous();
  }
  const at::Tensor codes = m.nibbles ? unpack_nibbles(m.codes, n) : m.codes;
  const at::Tensor vals = lookup(element_table(m.format.element, codes.device()), codes);
  const at::Tensor sc = mx_detail::scale_values(m);
  const int64_t B = m.format.block;
  const int64_t nb = sc.size(-1);
  at::Tensor v = nb * B != n ? at::constant_pad_nd(vals, {0, nb * B - n}, 0) : vals;
  std::vector<int64_t> blocked = lead;
  blocked.push_back(nb);
  blocked.push_back(B);
  v = v.reshape(blocked) * sc.unsqueeze(-1);
  std::vector<int64_t> padded = moved;
  padded.back() = nb * B;
  return v.reshape(padded).narrow(-1, 0, n).movedim(-1, m.axis).to(dtype).contiguous();
}

at::Tensor gguf_mxfp4_encode(const at::Tensor& x, const MxFormat& format) {
  if (format.element != ElementFormat::E2M1 || format.scale_type != ScaleType::E8M0 || format.block != 32) {
    throw UsageError("GGUF MXFP4: expected the mxfp4 format with block 32, found " + format.describe());
  }
  mx_detail::require_floating(x, "GGUF MXFP4 input");
  if (x.size(-1) % 32 != 0) {
    fail("", "GGUF MXFP4 input", "a last dimension that is a multiple of 32", std::to_string(x.size(-1)));
  }
  const MxPacked m = mx_encode(x, format, -1, false);
  const at::Tensor codes = m.codes.reshape({-1, 32});
  const at::Tensor out = at::empty({codes.size(0), 17}, at::kByte);
  out.select(1, 0).copy_(m.scales.reshape({-1}));
  out.narrow(1, 1, 16).copy_(at::bitwise_or(codes.narrow(1, 0, 16), codes.narrow(1, 16, 16) * 16));
  return out;
}

at::Tensor gguf_mxfp4_decode(const at::Tensor& blocks, at::IntArrayRef shape) {
  int64_t numel = 1;
  for (int64_t s : shape) numel *= s;
  if (shape.empty() || shape.back() % 32 != 0) {
    fail("", "GGUF MXFP4 shape", "a last dimension that is a multiple of 32", shape_to_string(shape));
  }
  if (blocks.scalar_type() != at::kByte || blocks.dim() != 2 || blocks.size(1) != 17 ||
      blocks.size(0) * 32 != numel) {
    fail("", "GGUF MXFP4 blocks", "uint8 [" + std::to_string(numel / 32) + ", 17]",
         std::string(c10::toString(blocks.scalar_type())) + " " + shape_to_string(blocks.sizes()));
  }
  const at::Tensor qs = blocks.narrow(1, 1, 16);
  MxPacked m;
  m.format = MxFormat{};
  m.shape = shape.vec();
  m.axis = static_cast<int64_t>(shape.size()) - 1;
  const std::vector<int64_t> lead(shape.begin(), shape.end() - 1);
  std::vector<int64_t> cshape = lead, sshape = lead;
  cshape.push_back(shape.back());
  sshape.push_back(shape.back() / 32);
  m.codes = at::cat({qs.bitwise_and(15), at::bitwise_right_shift(qs, 4)}, 1).reshape(cshape);
  m.scales = blocks.select(1, 0).reshape(sshape);
  return mx_decode(m, at::kFloat);
}

}  // namespace latmix
