#pragma once
// What the tests of the use-case layer (tests/unit/test_api_*.cpp) share: the bundled model and
// sample, opened once per test process, and the check of a UsageError's message.

#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "latmix/error.h"
#include "latmix/model.h"
#include "latmix/model_files.h"
#include "latmix/tokenizer.h"
#include "test_paths.h"

namespace latmix::test {

/// The bundled demo model and calibration sample, relative to the source tree.
inline const std::string kBundledModel = "resources/models/gutenberg-llama-6M";
inline const std::string kBundledSample = "resources/calibration/pride_and_prejudice_ch1-6.txt";

/// The bundled model held in memory (fp32 on the CPU) and its tokenizer, loaded at first use.
inline const Model& bundled_model() {
  static const Model model = load_model(source_path(kBundledModel));
  return model;
}
inline const Tokenizer& bundled_tokenizer() {
  static const std::unique_ptr<Tokenizer> tokenizer =
      load_model_tokenizer(source_path(kBundledModel), "", static_cast<int32_t>(bundled_model().config().vocab_size));
  return *tokenizer;
}

/// `f` throws a latmix::UsageError whose message holds `needle` (a failure of the running test otherwise).
inline void expect_usage_error(const std::function<void()>& f, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "no error, expected one with: " << needle;
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

}  // namespace latmix::test
