// The GPTQ calibration (latmix/api/calibration.h): one default size and one way to read the text,
// for export, evaluate and the studio.
#include "latmix/api/calibration.h"

#include <algorithm>
#include <filesystem>

#include "latmix/error.h"
#include "latmix/files.h"

namespace latmix::api {

std::string regular_file_or_empty(const std::string& path) {
  std::error_code ec;
  return !path.empty() && std::filesystem::is_regular_file(path, ec) ? path : std::string();
}

CalibrationSize gptq_calibration_defaults(bool gpu, int64_t max_position) {
  const int64_t context = max_position > 0 ? max_position : 2048;
  return gpu ? CalibrationSize{128, std::min<int64_t>(context, 2048)} : CalibrationSize{16, std::min<int64_t>(context, 256)};
}

GptqCalibration gptq_calibration(const std::string& file, std::optional<int64_t> samples,
                                 std::optional<int64_t> seqlen, const Model& model, const Tokenizer& tokenizer,
                                 const std::string& bundled_sample) {
  const bool gpu = model.device().is_cuda();
  const CalibrationSize d = gptq_calibration_defaults(gpu, model.config().max_position);
  CalibrationOptions co;
  co.samples = samples.value_or(d.samples);
  co.seqlen = seqlen.value_or(d.seqlen);
  if (co.samples < 1) throw UsageError("--calib-samples: expected 1 or more");
  if (co.seqlen < 2) throw UsageError("--calib-seqlen: expected 2 or more");
  GptqCalibration out;
  out.file = file.empty() ? regular_file_or_empty(bundled_sample) : file;
  if (out.file.empty()) {
    throw UsageError("weights=gptq calibrates on text: give --calib FILE (the bundled sample was not found)");
  }
  const std::vector<int32_t> ids = tokenizer.encode(read_text_file(out.file));
  const int64_t windows = static_cast<int64_t>(ids.size()) / co.seqlen;
  std::string why = samples || seqlen ? "as given"
                                      : std::string("the GPTQ default on ") +
                                            (gpu ? "CUDA: 128 x 2048, the literature's" : "the CPU: 16 x 256 (128 x 2048 on CUDA)");
  if (!samples && windows >= 1 && windows < co.samples) {
    why += "; the text has only " + std::to_string(windows) + " windows of " + std::to_string(co.seqlen) + ", all taken";
    co.samples = windows;
  }
  out.set = sample_calibration(ids, co);
  out.note = "calibration: " + out.set.describe() + " of " + out.file + " (" + why + ")";
  return out;
}

}  // namespace latmix::api
