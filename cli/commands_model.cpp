// latmix info | tokenize | logits | generate
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>

#include <sched.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>

#include "commands.h"
#include "console.h"
#include "remote.h"
#include "latmix/api/model.h"
#include "latmix/error.h"
#include "latmix/model_files.h"
#include "latmix/model_inspect.h"
#include "latmix/tensor_io.h"
#include "result_text.h"

namespace latmix::cli {

using json = nlohmann::json;
namespace fs = std::filesystem;

OptionSpec model_option() {
  return {"model", "PATH", "Hugging Face model folder or llama2.c .bin checkpoint", "", true};
}
OptionSpec tokenizer_option() {
  return {"tokenizer", "FILE", "tokenizer file (default: the model's own)", "", false};
}
OptionSpec dtype_option() { return {"dtype", "fp32|bf16", "compute dtype", "fp32", false}; }
OptionSpec weights_option() {
  return {"weights", "auto|mapped|memory",
          "mapped: matrices stay memory-mapped in the file's dtype, converted one at a time when used (same "
          "results, a fraction of the memory); memory: all converted at load (Hugging Face folders; .bin: memory); "
          "auto: mapped on the CPU, memory on CUDA (the GPU then holds the model instead of receiving it at every "
          "pass)",
          "auto", false};
}

bool mapped_weights(const Args& args) {
  const std::string w = args.get("weights");
  if (w != "auto" && w != "mapped" && w != "memory")
    throw UsageError("--weights: expected auto, mapped or memory, found '" + w + "'");
  if (w == "auto") return parse_device(args.get("device")).is_cpu();
  return w == "mapped";
}

// The CPUs this process may run on (its affinity mask, which containers narrow), else the machine's.
int64_t available_cores() {
  cpu_set_t set;
  if (::sched_getaffinity(0, sizeof set, &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max(1u, std::thread::hardware_concurrency());
}

at::Device apply_common_options(const Args& args) {
  int64_t threads = args.integer("threads");
  if (threads < 0) throw UsageError("--threads: expected 0 or more, found " + std::to_string(threads));
  const int64_t cores = available_cores();
  if (threads > cores) {
    // More threads than cores only adds contention: 512 on 2 cores made ppl spin for minutes.
    std::fprintf(stderr, "note: --threads %lld is more than the %lld cores available; using %lld\n",
                 static_cast<long long>(threads), static_cast<long long>(cores), static_cast<long long>(cores));
    threads = cores;
  }
  if (threads > 0) at::set_num_threads(static_cast<int>(threads));
  return parse_device(args.get("device"));
}

Model load_model_only(const Args& args, at::ScalarType dtype, bool mapped, std::optional<at::Device> on) {
  const at::Device requested = apply_common_options(args);
  const at::Device device = on.value_or(requested);
  ProgressPrinter progress(args.flag("quiet"));
  LoadOptions opts;
  opts.dtype = dtype;
  opts.device = device;
  opts.mapped = mapped;
  opts.job.progress = progress.callback();
  opts.job.cancel = interrupt_token();
  Model model = load_model(args.get("model"), opts);
  progress.finish();
  return model;
}

LayerProgress::LayerProgress(Model& model, const std::string& stage, int64_t passes, ProgressFn print)
    : model_(model) {
  const int64_t total = model.config().num_layers * std::max<int64_t>(1, passes);
  job.cancel = interrupt_token();
  JobControl layers;
  layers.cancel = job.cancel;
  layers.progress = print;
  hook_ = std::make_shared<LayerProgressHook>(stage, model.config().num_layers, std::max<int64_t>(1, passes), layers);
  model_.add_hook(hook_);
  job.progress = [stage, total, print](std::string_view s, int64_t done, int64_t all) {
    if (s != stage) return print(s, done, all);
    if (all > 0 && done >= all) print(s, total, total);
  };
}

LayerProgress::~LayerProgress() { model_.remove_hook(hook_); }

LoadedModel load_model_from_args(const Args& args, at::ScalarType dtype, bool mapped, std::optional<at::Device> on) {
  Model model = load_model_only(args, dtype, mapped, on);
  auto tok = load_model_tokenizer(args.get("model"), args.get("tokenizer"),
                                  static_cast<int32_t>(model.config().vocab_size));
  return {std::move(model), std::move(tok)};
}

namespace {

std::string yes_no(bool b) { return b ? "yes" : "no"; }

std::string stored_dtypes(const api::ModelDescription& d) {
  std::string out;
  for (const auto& [dtype, count] : d.stored_dtypes) {
    if (!out.empty()) out += ", ";
    out += dtype + " (" + std::to_string(count) + " tensors)";
  }
  return out;
}

// The Overview's table: max|W| / RMS(W) of each linear, a row per layer.
void append_overview(std::string& out, const api::WeightOverview& o) {
  appendf(out, "\nweight outliers: max|W| / RMS(W) of each linear\n%-8s", "layer");
  for (const auto& c : o.columns) appendf(out, " %8s", c.c_str());
  appendf(out, "\n");
  const size_t cols = o.columns.size();
  for (int64_t r = 0; r < o.rows; ++r) {
    appendf(out, "%-8lld", static_cast<long long>(r));
    for (size_t c = 0; c < cols; ++c) appendf(out, " %8.2f", o.max_over_rms[static_cast<size_t>(r) * cols + c]);
    appendf(out, "\n");
  }
}

// The headers only (`info` reads no weight: a 16 GB model is described in milliseconds); with
// --overview, the weights too.
int run_info(const Args& args) {
  apply_common_options(args);
  api::ModelDescription d;
  if (remote_engine()) {
    ProgressPrinter progress(args.flag("quiet"));
    nlohmann::json request = api::to_json(api::DescribeRequest{args.get("model"), args.get("tokenizer")});
    request["overview"] = args.flag("overview");
    request["weights"] = args.get("weights");
    d = api::model_description_from_json(run_remote("describe", request, {progress.callback()}));
    progress.finish();
  } else {
    d = api::describe_model({args.get("model"), args.get("tokenizer")});
  }
  if (args.flag("overview") && !remote_engine()) {
    const Model model = load_model_only(args, at::kFloat, mapped_weights(args));
    ProgressPrinter progress(args.flag("quiet"));
    JobControl job;
    job.cancel = interrupt_token();
    job.progress = progress.callback();
    d.overview = api::weight_overview(model, job);
    progress.finish();
  }
  if (args.flag("json")) {
    std::cout << api::to_json(d).dump(2) << "\n";
    return 0;
  }
  std::printf("%s", format_info_text(d).c_str());
  return 0;
}

int run_tokenize(const Args& args) {
  apply_common_options(args);
  // A llama2.c tokenizer file does not say its vocabulary size: a llama2.c checkpoint's header
  // does. A folder needs only its tokenizer (no config.json).
  const int32_t vocab = is_llama2c_checkpoint(args.get("model"))
                            ? static_cast<int32_t>(inspect_model(args.get("model")).config.vocab_size)
                            : 0;
  auto tok = load_model_tokenizer(args.get("model"), args.get("tokenizer"), vocab);
  std::vector<int32_t> ids = args.flag("bos") ? tok->encode_with_bos(args.get("text"), true)
                                              : tok->encode(args.get("text"));
  json j = ids;
  if (args.flag("json")) {
    json tokens = json::array();
    for (int32_t id : ids) tokens.push_back(tok->token_text(id));
    std::cout << json{{"ids", ids}, {"tokens", tokens}, {"count", ids.size()}}.dump() << "\n";
  } else {
    std::cout << j.dump() << "\n";
  }
  return 0;
}

// write_safetensors renames its result over the target, so `--out MODEL/model.safetensors` would
// replace the weights: refuse a target that is the model or any file of its folder (the same
// inode, so links and other spellings of the path count too).
void refuse_model_file_as_out(const std::string& out, const std::string& model_path) {
  struct stat target {};
  if (::stat(out.c_str(), &target) != 0) return;  // nothing there yet
  std::vector<fs::path> files{model_path};
  std::error_code ec;
  if (fs::is_directory(model_path, ec)) {
    for (const auto& entry : fs::directory_iterator(model_path, ec)) files.push_back(entry.path());
  }
  for (const fs::path& f : files) {
    struct stat st {};
    if (::stat(f.c_str(), &st) == 0 && st.st_dev == target.st_dev && st.st_ino == target.st_ino) {
      throw UsageError("--out " + out + " is " + f.string() + ", part of the model: write the logits elsewhere");
    }
  }
}

int run_logits(const Args& args) {
  refuse_model_file_as_out(args.get("out"), args.get("model"));
  // Token ids in, logits out: no tokenizer is needed (save_pretrained folders often have none).
  const Model model = load_model_only(args, parse_compute_dtype(args.get("dtype")), mapped_weights(args));
  std::vector<int64_t> ids = args.integer_list("ids");
  if (ids.empty()) throw UsageError("--ids: no token ids given");
  for (int64_t id : ids) {
    if (id < 0 || id >= model.config().vocab_size) {
      throw UsageError("--ids: token id " + std::to_string(id) + " outside the vocabulary (0.." +
                       std::to_string(model.config().vocab_size - 1) + ")");
    }
  }
  c10::InferenceMode guard;
  at::Tensor logits = model.forward(at::tensor(ids, at::kLong)).to(at::kCPU).contiguous();
  write_safetensors(args.get("out"), {{"logits", logits}},
                    {{"format", "pt"}, {"ids", json(ids).dump()}, {"dtype", args.get("dtype")}, {"model", args.get("model")}});
  at::Tensor top = logits.argmax(-1);
  if (args.flag("json")) {
    std::cout << json{{"out", args.get("out")},
                      {"shape", {logits.size(0), logits.size(1)}},
                      {"argmax", std::vector<int64_t>(top.data_ptr<int64_t>(), top.data_ptr<int64_t>() + top.numel())}}
                     .dump()
              << "\n";
  } else {
    std::printf("wrote logits [%lld, %lld] fp32 to %s\n", static_cast<long long>(logits.size(0)),
                static_cast<long long>(logits.size(1)), args.get("out").c_str());
  }
  return 0;
}

int run_generate(const Args& args) {
  LoadedModel m = load_model_from_args(args, parse_compute_dtype(args.get("dtype")));
  const int64_t max_new = args.integer("max-new");
  if (max_new < 0) throw UsageError("--max-new: expected 0 or more");
  const bool bos = m.model.config().source_format == "llama2.c" || m.tokenizer->add_bos_by_default();
  std::vector<int32_t> prompt = m.tokenizer->encode_with_bos(args.get("prompt"), bos);
  if (prompt.empty()) throw UsageError("--prompt: empty prompt and the model has no BOS token");
  ProgressPrinter progress(args.flag("quiet") || !args.flag("json"));
  JobControl job;
  job.cancel = interrupt_token();
  job.progress = progress.callback();
  c10::InferenceMode guard;
  std::vector<int32_t> out = generate_greedy(m.model, prompt, max_new, m.tokenizer->eos_id(), job);
  progress.finish();
  std::vector<int32_t> all = prompt;
  all.insert(all.end(), out.begin(), out.end());
  const std::string text = m.tokenizer->decode(all);
  if (args.flag("json")) {
    std::cout << json{{"prompt_ids", prompt}, {"generated_ids", out}, {"text", text}}.dump() << "\n";
  } else {
    std::cout << text << "\n";
  }
  return 0;
}

}  // namespace

std::string format_info_text(const api::ModelDescription& d) {
  std::string out;
  appendf(out, "model          %s\n", d.path.c_str());
  appendf(out, "architecture   %s (%s, from %s)\n", d.architecture.c_str(), d.family.c_str(), d.source_format.c_str());
  appendf(out, "layers         %lld\n", static_cast<long long>(d.layers));
  appendf(out, "hidden         %lld   intermediate %lld\n", static_cast<long long>(d.hidden_size),
          static_cast<long long>(d.intermediate_size));
  appendf(out, "heads          %lld query, %lld key/value, head_dim %lld\n", static_cast<long long>(d.attention_heads),
          static_cast<long long>(d.kv_heads), static_cast<long long>(d.head_dim));
  appendf(out, "vocab          %lld   max positions %lld\n", static_cast<long long>(d.vocab_size),
          static_cast<long long>(d.max_position));
  appendf(out, "rope           %s, theta %g\n", d.rope_type.c_str(), d.rope_theta);
  appendf(out, "tied head      %s   attention bias %s   qk-norm %s\n", yes_no(d.tied_embeddings).c_str(),
          yes_no(d.attention_bias).c_str(), yes_no(d.qk_norm).c_str());
  appendf(out, "dtype          %s (checkpoint)\n", d.checkpoint_dtype.c_str());
  appendf(out, "parameters     %lld (%.2f M)\n", static_cast<long long>(d.parameters),
          static_cast<double>(d.parameters) / 1e6);
  appendf(out, "weights        %.2f GB stored: %s\n", static_cast<double>(d.weight_bytes) / 1e9,
          stored_dtypes(d).c_str());
  appendf(out, "tokenizer      %s, %lld ids\n", d.tokenizer_kind.c_str(), static_cast<long long>(d.tokenizer_vocab));
  if (d.overview) append_overview(out, *d.overview);
  return out;
}

std::vector<Command> model_commands() {
  return {
      {{"info", "Show a model's architecture, sizes, stored dtypes, parameter count and tokenizer.",
        "Reads config.json (or the llama2.c header) and the safetensors headers only: no weight is loaded, every\n"
        "tensor the model needs is checked by name, shape and dtype. With --overview it also reads every linear\n"
        "weight (memory-mapped on the CPU, one at a time) and prints max|W| / RMS(W) per linear and layer, the\n"
        "studio's Overview (in --json: \"overview\" with columns, rows, max_over_rms and rms, row-major).",
        {model_option(), tokenizer_option(),
         {"overview", "", "read the weights: max|W| / RMS(W) of each linear of each layer", "", false},
         weights_option()}},
       run_info},
      {{"tokenize", "Print the token ids of a text as JSON.", "",
        {model_option(), tokenizer_option(), {"text", "STR", "the text to tokenize", "", true},
         {"bos", "", "prepend the BOS token", "", false}}},
       run_tokenize},
      {{"logits", "Run the model on token ids and write the logits.",
        "Writes a safetensors file with one tensor `logits` [T, vocab] in float32. Needs no tokenizer; --out may not\n"
        "be a file of the model.",
        {model_option(), {"ids", "1,2,3", "comma-separated token ids", "", true}, dtype_option(), weights_option(),
         {"out", "FILE", "output .safetensors file (written atomically)", "", true}}},
       run_logits},
      {{"generate", "Greedy text generation.",
        "The prompt is encoded with BOS when the tokenizer asks for it (always for llama2.c models).",
        {model_option(), tokenizer_option(), {"prompt", "STR", "the prompt text", "", true},
         {"max-new", "N", "tokens to generate", "64", false}, dtype_option()}},
       run_generate},
  };
}

}  // namespace latmix::cli
