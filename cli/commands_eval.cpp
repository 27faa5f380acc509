// latmix ppl
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "console.h"
#include "latmix/error.h"
#include "latmix/eval.h"
#include "latmix/files.h"
#include "latmix/text_stream.h"

namespace latmix::cli {

using json = nlohmann::json;

namespace {

int run_ppl(const Args& args) {
  LoadedModel m = load_model_from_args(args, parse_compute_dtype(args.get("dtype")), mapped_weights(args));
  PerplexityOptions opt;
  opt.seqlen = args.integer("seqlen");
  opt.max_windows = args.integer("max-windows");
  opt.batch_size = args.integer("batch");
  opt.bos = args.flag("bos");
  if (opt.bos) {
    auto bos = m.tokenizer->bos_id() ? m.tokenizer->bos_id() : m.model.config().bos_token_id;
    if (!bos) throw UsageError("--bos: the model's tokenizer has no BOS token");
    opt.bos_id = *bos;
  }
  if (opt.max_windows < 0) throw UsageError("--max-windows: expected 0 or more");
  if (opt.batch_size < 1) throw UsageError("--batch: expected 1 or more");
  ProgressPrinter progress(args.flag("quiet"));
  const auto t0 = std::chrono::steady_clock::now();
  // Read in pieces, and only as far as --max-windows needs (issue 20, item 10).
  const int64_t per_window = opt.bos ? opt.seqlen - 1 : opt.seqlen;
  const EncodedText text = encode_text_file(*m.tokenizer, args.get("data"), opt.max_windows * std::max<int64_t>(per_window, 1));
  const std::vector<int32_t>& ids = text.ids;
  const auto t1 = std::chrono::steady_clock::now();
  // The bar moves per layer: one pass of a big model takes minutes on a CPU.
  const LayerProgress layers(m.model, "perplexity", perplexity_passes(ids.size(), opt), progress.callback());
  PerplexityResult r = evaluate_perplexity(m.model, ids, opt, layers.job);
  const auto t2 = std::chrono::steady_clock::now();
  progress.finish();
  const double tok_s = std::chrono::duration<double>(t1 - t0).count();
  const double eval_s = std::chrono::duration<double>(t2 - t1).count();
  if (args.flag("json")) {
    std::cout << json{{"model", args.get("model")},
                      {"data", args.get("data")},
                      {"perplexity", r.perplexity},
                      {"mean_nll", r.mean_nll},
                      {"seqlen", r.seqlen},
                      {"windows", r.windows},
                      {"tokens_scored", r.tokens_scored},
                      {"text_tokens", r.text_tokens},
                      {"text_read_whole", text.whole},
                      {"bos", r.bos},
                      {"dtype", args.get("dtype")},
                      {"device", args.get("device")},
                      {"tokenize_seconds", tok_s},
                      {"eval_seconds", eval_s}}
                     .dump(2)
              << "\n";
  } else {
    std::printf("%s\n", r.describe().c_str());
    std::printf("text: %lld tokens from %s%s; tokenized in %s, evaluated in %s\n",
                static_cast<long long>(r.text_tokens), args.get("data").c_str(),
                text.whole ? "" : " (read as far as --max-windows needs)", format_duration(tok_s).c_str(),
                format_duration(eval_s).c_str());
  }
  return 0;
}

}  // namespace

std::vector<Command> eval_commands() {
  return {
      {{"ppl", "Perplexity of a model on a text file.",
        "Protocol (GPTQ/QuaRot): the file's text is tokenized as it is (no BOS), cut into non-overlapping\n"
        "windows of --seqlen tokens, the tail dropped; every position but the first of each window is scored;\n"
        "ppl = exp(mean NLL). With --bos each window is BOS + (seqlen - 1) text tokens, all text tokens scored.",
        {model_option(), tokenizer_option(), {"data", "FILE", "text file (e.g. wiki.test.raw)", "", true},
         {"seqlen", "N", "window length in tokens", "512", false},
         {"max-windows", "K", "evaluate at most K windows (0: all)", "0", false},
         {"bos", "", "start every window with the BOS token", "", false},
         {"batch", "N", "windows per forward pass", "4", false}, dtype_option(), weights_option()}},
       run_ppl},
  };
}

}  // namespace latmix::cli
