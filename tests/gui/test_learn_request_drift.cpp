// Issue 16's drift test for the learn and export tasks: the same run asked for through the CLI's
// parser (an argv of `latmix learn` / `latmix export`) and through the studio's Learn form or Export
// panel (their widgets set as a person would, found by the option names they carry) is the same
// engine request, as JSON — for the form left at its defaults and for every option set. And the
// form's "same run from the command line" parses back into the request the form describes. GoogleTest under QT_QPA_PLATFORM=offscreen (set here when unset,
// so that ctest can list the cases without a display).
#include <gtest/gtest.h>

#include <QApplication>
#include <QCheckBox>
#include <QComboBox>
#include <QCoreApplication>
#include <QLineEdit>
#include <QSettings>
#include <QSignalSpy>
#include <QSpinBox>
#include <QStandardPaths>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "args.h"
#include "commands.h"
#include "analyze_panel.h"
#include "commands_analyze.h"
#include "commands_evaluate.h"
#include "commands_export.h"
#include "commands_learn.h"
#include "commands_stats.h"
#include "compare_panel.h"
#include "engine_host.h"
#include "explorer_panel.h"
#include "export_panel.h"
#include "latmix/api/evaluate.h"
#include "latmix/api/export.h"
#include "latmix/api/learn.h"
#include "latmix/api/statistics.h"
#include "learn_panel.h"
#include "model_session.h"
#include "studio_context.h"
#include "zygote_server.h"

namespace {

const std::string kModel = LATMIX_SOURCE_DIR "/resources/models/gutenberg-llama-6M";
const std::string kSample = LATMIX_SOURCE_DIR "/resources/calibration/pride_and_prejudice_ch1-6.txt";

// `latmix NAME ARGS` read by the CLI's own parser into the api's request: `commands` is the CLI's
// table that holds NAME, `read` its reader (what `latmix` calls).
template <typename Read>
auto cli_request_of(const std::vector<latmix::cli::Command>& commands, const std::string& name, Read read,
                    const std::vector<std::string>& argv) {
  for (const auto& command : commands) {
    if (command.spec.name == name) return read(latmix::cli::Args(command.spec, argv));
  }
  throw std::logic_error("no " + name + " command");
}

// `latmix learn|export|compare|eval|analyze|stats ARGS` as each reads them.
latmix::api::LearnRequest cli_request(const std::vector<std::string>& argv) {
  return cli_request_of(latmix::cli::learn_commands(), "learn", latmix::cli::learn_request_from_args, argv);
}

latmix::api::ExportRequest cli_export_request(const std::vector<std::string>& argv) {
  return cli_request_of(latmix::cli::export_commands(), "export", latmix::cli::export_request_from_args, argv);
}

latmix::api::CompareRequest cli_compare_request(const std::vector<std::string>& argv) {
  return cli_request_of(latmix::cli::compare_commands(), "compare", latmix::cli::compare_request_from_args, argv);
}
latmix::api::EvaluateRequest cli_evaluate_request(const std::vector<std::string>& argv) {
  return cli_request_of(latmix::cli::evaluate_commands(), "eval", latmix::cli::evaluate_request_from_args, argv);
}

latmix::api::AnalyzeRequest cli_analyze_request(const std::vector<std::string>& argv) {
  return cli_request_of(latmix::cli::analyze_commands(), "analyze", latmix::cli::analyze_request_from_args, argv);
}

latmix::api::StatisticsRequest cli_statistics_request(const std::vector<std::string>& argv) {
  return cli_request_of(latmix::cli::stats_commands(), "stats", latmix::cli::statistics_request_from_args, argv);
}

// A POSIX shell's words of a line that shell_command() wrote (plain words and '...' quoting).
std::vector<std::string> shell_words(const std::string& line) {
  std::vector<std::string> words;
  std::string word;
  bool in_word = false, quoted = false;
  for (char c : line) {
    if (quoted) {
      if (c == '\'') {
        quoted = false;
      } else {
        word += c;
      }
    } else if (c == '\'') {
      quoted = in_word = true;
    } else if (c == '\\') {
      continue;  // shell_command writes ' as '\'' : the backslash escapes the next quote
    } else if (c == ' ') {
      if (in_word) words.push_back(word);
      word.clear();
      in_word = false;
    } else {
      word += c;
      in_word = true;
    }
  }
  if (in_word) words.push_back(word);
  return words;
}

class LearnRequestDrift : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    host_ = std::make_unique<latmix::studio::EngineHost>();
    session_ = std::make_unique<latmix::studio::ModelSession>(host_.get());
    QSignalSpy opened(session_.get(), &latmix::studio::ModelSession::opened);
    session_->open(QString::fromStdString(kModel));
    ASSERT_TRUE(opened.wait(120000)) << "the bundled model did not open";
  }
  static void TearDownTestSuite() {
    session_.reset();
    host_.reset();
  }
  void SetUp() override {
    QSettings().clear();  // the form starts from the CLI's defaults, not from an earlier run's
    context_ = std::make_unique<latmix::studio::StudioContext>(host_.get(), session_.get());
    explorer_ = std::make_unique<latmix::studio::ExplorerPanel>(context_.get());
    panel_ = std::make_unique<latmix::studio::LearnPanel>(context_.get());
  }
  void TearDown() override {
    panel_.reset();
    explorer_.reset();
    context_.reset();
  }

  template <typename W>
  W* widget(const char* option) {
    W* w = panel_->findChild<W*>(option);
    if (w == nullptr) ADD_FAILURE() << "the Learn form has no " << option << " control";
    return w;
  }
  void choose(const char* option, const QString& value) {
    auto* c = widget<QComboBox>(option);
    if (c == nullptr) return;
    const int i = c->findData(value);
    ASSERT_GE(i, 0) << option << " offers no " << value.toStdString();
    c->setCurrentIndex(i);
  }
  void type(const char* option, const QString& text) {
    if (auto* e = widget<QLineEdit>(option)) e->setText(text);
  }
  void spin(const char* option, int value) {
    if (auto* s = widget<QSpinBox>(option)) s->setValue(value);
  }

  static std::unique_ptr<latmix::studio::EngineHost> host_;
  static std::unique_ptr<latmix::studio::ModelSession> session_;
  std::unique_ptr<latmix::studio::StudioContext> context_;
  std::unique_ptr<latmix::studio::ExplorerPanel> explorer_;
  std::unique_ptr<latmix::studio::LearnPanel> panel_;
};

std::unique_ptr<latmix::studio::EngineHost> LearnRequestDrift::host_;
std::unique_ptr<latmix::studio::ModelSession> LearnRequestDrift::session_;

TEST_F(LearnRequestDrift, TheDefaultRequestIsTheSameThroughTheCliAndTheLearnForm) {
  choose("method", "latmix");
  const latmix::api::LearnRequest form = panel_->request();
  // The form offers gutenberg when the data folder has it, else the bundled sample (a person sees that).
  std::vector<std::string> argv = {"--model", kModel, "--method", "latmix"};
  if (form.calib != "gutenberg") argv.insert(argv.end(), {"--calib", form.calib});
  EXPECT_EQ(latmix::api::to_json(form).dump(2), latmix::api::to_json(cli_request(argv)).dump(2));
  // Unset means the method's default: nothing of the form's numbers is pinned.
  EXPECT_FALSE(form.steps || form.batch || form.lr || form.samples || form.seqlen);
}

TEST_F(LearnRequestDrift, EveryKnobSetIsTheSameThroughTheCliAndTheLearnForm) {
  // Option and value pairs, as typed.
  // clang-format off
  const std::vector<std::string> argv = {
      "--model", kModel, "--method", "latmix", "--quant", "mxint4", "--calib", kSample, "--samples", "8",
      "--seqlen", "64", "--seed", "7", "--steps", "5", "--batch", "3", "--lr", "0.002", "--optimizer", "sgd",
      "--momentum", "0.9", "--weight-decay", "0.01", "--warmup", "0.2", "--schedule", "constant", "--grad-clip",
      "0.5", "--lambda", "0.3", "--param", "qr", "--init", "block_hadamard", "--affine-bias", "no",
      "--rotation-map", "exp", "--mode", "layerwise", "--loss", "mse", "--micro-batch", "2", "--loss-chunk", "128",
      "--recompute", "no", "--kept-layers", "1", "--teacher-cache", "yes", "--validation", "2", "--eval-every", "3",
      "--patience", "5", "--deployed-check", "every", "--gptq-refresh", "4", "--device", "cpu"};
  // clang-format on
  choose("method", "latmix");
  if (auto* q = widget<QComboBox>("quant")) q->setCurrentText("mxint4");
  if (auto* c = widget<QComboBox>("calib")) c->setCurrentText(QString::fromStdString(kSample));
  spin("samples", 8);
  spin("seqlen", 64);
  spin("seed", 7);
  spin("steps", 5);
  spin("batch", 3);
  type("lr", "0.002");
  choose("optimizer", "sgd");
  type("momentum", "0.9");
  type("weight-decay", "0.01");
  type("warmup", "0.2");
  choose("schedule", "constant");
  type("grad-clip", "0.5");
  type("lambda", "0.3");
  choose("param", "qr");
  choose("init", "block_hadamard");
  choose("affine-bias", "no");
  choose("rotation-map", "exp");
  choose("mode", "layerwise");
  choose("loss", "mse");
  type("micro-batch", "2");
  type("loss-chunk", "128");
  choose("recompute", "no");
  type("kept-layers", "1");
  choose("teacher-cache", "yes");
  type("validation", "2");
  type("eval-every", "3");
  type("patience", "5");
  choose("deployed-check", "every");
  type("gptq-refresh", "4");
  const latmix::api::LearnRequest form = panel_->request();
  const latmix::api::LearnRequest cli = cli_request(argv);
  EXPECT_EQ(latmix::api::to_json(form).dump(2), latmix::api::to_json(cli).dump(2));
  // Every learning knob of the CLI is one the form set (none left at its default).
  const nlohmann::json j = latmix::api::to_json(form);
  for (const auto& option : latmix::api::learn_option_help()) {
    std::string key = option.name;
    for (char& c : key) c = c == '-' ? '_' : c;
    if (key == "data_dir") continue;  // the data folder is a setting (File > Settings), for gutenberg only
    ASSERT_TRUE(j.contains(key)) << key;
    EXPECT_FALSE(j[key].is_null()) << "the form left --" << option.name << " unset";
  }
}

TEST_F(LearnRequestDrift, TheFormsCommandLineRepeatsItsRequest) {
  // In this process the run learns alone: the engine's processes are off (gui_remote sends them).
  auto* nproc = widget<QSpinBox>("nproc");
  ASSERT_NE(nproc, nullptr);
  EXPECT_FALSE(nproc->isEnabled());
  EXPECT_EQ(panel_->processes(), 1);
  choose("method", "spinquant");
  if (auto* c = widget<QComboBox>("calib")) c->setCurrentText(QString::fromStdString(kSample) + ",/tmp/a b.txt");
  spin("steps", 4);
  type("lr", "0.125");
  choose("rotation-map", "exp");
  choose("mode", "e2e");
  type("momentum", "0.5");
  choose("affine-bias", "yes");
  const latmix::api::LearnRequest form = panel_->request();
  const std::vector<std::string> words = shell_words(panel_->cliCommand().toStdString());
  ASSERT_GE(words.size(), 2u);
  EXPECT_EQ(words[0], "latmix");
  EXPECT_EQ(words[1], "learn");
  latmix::api::LearnRequest expected = form;
  expected.out = "PREFIX";  // the command line names its output; Save transforms does in the studio
  EXPECT_EQ(latmix::api::to_json(cli_request({words.begin() + 2, words.end()})).dump(2),
            latmix::api::to_json(expected).dump(2));
}

// The Export panel beside the Learn form it takes its plan and default format from.
class ExportRequestDrift : public LearnRequestDrift {
 protected:
  void SetUp() override {
    LearnRequestDrift::SetUp();
    export_ = std::make_unique<latmix::studio::ExportPanel>(context_.get());
    export_->setOutputFolder(QString::fromStdString(folder_));
  }
  void TearDown() override {
    export_.reset();
    LearnRequestDrift::TearDown();
  }
  template <typename W>
  W* option(const char* name) {
    W* w = export_->findChild<W*>(name);
    if (w == nullptr) ADD_FAILURE() << "the Export panel has no " << name << " control";
    return w;
  }
  static std::string json_of(const latmix::api::ExportRequest& r) { return latmix::api::to_json(r).dump(2); }

  std::unique_ptr<latmix::studio::ExportPanel> export_;
  const std::string folder_ = QStandardPaths::writableLocation(QStandardPaths::TempLocation).toStdString() +
                              "/latmix-export-drift";
};

TEST_F(ExportRequestDrift, TheOneClickExportIsTheSameThroughTheCliAndTheExportPanel) {
  const latmix::api::ExportRequest form = export_->request();
  // What the panel's one click does, typed: rtn (no plan), the Learn tab's format, a verified bundle.
  const latmix::api::ExportRequest cli = cli_export_request(
      {"--model", kModel, "--method", "rtn", "--quant", form.quant, "--as", "compressed-tensors", "--zip", "--out",
       form.out});
  EXPECT_EQ(json_of(form), json_of(cli));
  // The GPTQ calibration size is left to the one default (api::gptq_calibration_defaults()).
  EXPECT_FALSE(form.calib_samples || form.calib_seqlen);
}

TEST_F(ExportRequestDrift, EveryOptionSetIsTheSameThroughTheCliAndTheExportPanel) {
  const int i = option<QComboBox>("as")->findData("folded-bf16");
  ASSERT_GE(i, 0);
  option<QComboBox>("as")->setCurrentIndex(i);
  option<QCheckBox>("zip")->setChecked(false);
  option<QComboBox>("quant")->setCurrentText("w=mxfp4,a=none,weights=gptq");
  option<QLineEdit>("method")->setText("gptq");
  option<QCheckBox>("overwrite")->setChecked(true);
  option<QLineEdit>("verify-data")->setText(QString::fromStdString(kSample));
  option<QSpinBox>("verify-seqlen")->setValue(64);
  option<QSpinBox>("verify-windows")->setValue(2);
  option<QSpinBox>("shard-size")->setValue(512);
  option<QLineEdit>("calib")->setText(QString::fromStdString(kSample));
  option<QSpinBox>("calib-samples")->setValue(4);
  option<QSpinBox>("calib-seqlen")->setValue(32);
  const latmix::api::ExportRequest form = export_->request();
  // clang-format off
  const latmix::api::ExportRequest cli = cli_export_request({
      "--model", kModel, "--method", "gptq", "--quant", "w=mxfp4,a=none,weights=gptq", "--as", "folded-bf16",
      "--out", folder_ + "/gutenberg-llama-6M-gptq-bf16", "--overwrite", "--shard-size", "512",
      "--verify-data", kSample, "--verify-seqlen", "64", "--verify-windows", "2", "--calib", kSample,
      "--calib-samples", "4", "--calib-seqlen", "32"});
  // clang-format on
  EXPECT_EQ(json_of(form), json_of(cli));
  // Unchecking "verify" is --no-verify (the verification's own options are then refused by both).
  option<QCheckBox>("verify")->setChecked(false);
  option<QLineEdit>("verify-data")->clear();
  const latmix::api::ExportRequest unverified = cli_export_request(
      {"--model", kModel, "--method", "gptq", "--quant", "w=mxfp4,a=none,weights=gptq", "--as", "folded-bf16", "--out",
       folder_ + "/gutenberg-llama-6M-gptq-bf16", "--overwrite", "--shard-size", "512", "--no-verify",
       "--verify-seqlen", "64", "--verify-windows", "2", "--calib", kSample, "--calib-samples", "4",
       "--calib-seqlen", "32"});
  EXPECT_EQ(json_of(export_->request()), json_of(unverified));
}

TEST_F(ExportRequestDrift, ThePanelsCommandLineRepeatsItsRequest) {
  option<QComboBox>("quant")->setCurrentText("w=mxfp4,a=mxfp4");
  option<QSpinBox>("verify-windows")->setValue(3);
  option<QLineEdit>("calib")->setText(QString::fromStdString(kSample) + " copy");
  const latmix::api::ExportRequest form = export_->request();
  const std::vector<std::string> words = shell_words(latmix::studio::ExportPanel::cliCommand(form).toStdString());
  ASSERT_GE(words.size(), 2u);
  EXPECT_EQ(words[0], "latmix");
  EXPECT_EQ(words[1], "export");
  EXPECT_EQ(json_of(cli_export_request({words.begin() + 2, words.end()})), json_of(form));
}

// The Compare tab's two pages: the methods page is `latmix compare`, the spec page `latmix eval --quant`
// once per spec.
class CompareRequestDrift : public LearnRequestDrift {
 protected:
  void SetUp() override {
    LearnRequestDrift::SetUp();
    compare_ = std::make_unique<latmix::studio::ComparePanel>(context_.get());
  }
  void TearDown() override {
    compare_.reset();
    LearnRequestDrift::TearDown();
  }
  template <typename W>
  W* option(const char* name) {
    W* w = compare_->findChild<W*>(name);
    if (w == nullptr) ADD_FAILURE() << "the Compare tab has no " << name << " control";
    return w;
  }
  // The methods page's request, with the report folder the CLI must name.
  latmix::api::CompareRequest form(const std::string& out = "DIR") {
    latmix::api::CompareRequest r = compare_->methodsRequest();
    r.out = out;
    return r;
  }
  static std::string json_of(const latmix::api::CompareRequest& r) { return latmix::api::to_json(r).dump(2); }
  std::unique_ptr<latmix::studio::ComparePanel> compare_;
};

TEST_F(CompareRequestDrift, TheDefaultComparisonIsTheSameThroughTheCliAndTheMethodsPage) {
  compare_->configureMethods({"rtn", "latmix"}, "frankenstein", 8, 256, latmix::api::LearnRequest{});
  const latmix::api::CompareRequest f = form();
  const latmix::api::CompareRequest cli =
      cli_compare_request({"--model", kModel, "--methods", "rtn,latmix", "--tasks", "frankenstein", "--limit", "8",
                           "--eval-seqlen", "256", "--calib", f.learning.calib, "--out", "DIR"});
  EXPECT_EQ(json_of(f), json_of(cli));
  EXPECT_FALSE(f.learning.steps || f.learning.batch || f.learning.lr || f.learning.samples || f.learning.seqlen);
}

TEST_F(CompareRequestDrift, EveryKnobSetIsTheSameThroughTheCliAndTheMethodsPage) {
  compare_->configureMethods({"quarot", "spinquant", "latmix"}, "frankenstein,alice", 4, 128,
                             latmix::api::LearnRequest{});
  option<QComboBox>("quant")->setCurrentText("mxint4");
  option<QComboBox>("calib")->setCurrentText(QString::fromStdString(kSample));
  option<QSpinBox>("samples")->setValue(8);
  option<QSpinBox>("seqlen")->setValue(64);
  option<QSpinBox>("steps")->setValue(5);
  option<QLineEdit>("batch")->setText("3");
  option<QLineEdit>("lr")->setText("0.002");
  option<QSpinBox>("seed")->setValue(7);
  auto choose = [this](const char* name, const QString& value) {
    auto* c = option<QComboBox>(name);
    ASSERT_NE(c, nullptr);
    const int i = c->findData(value);
    ASSERT_GE(i, 0) << name << " offers no " << value.toStdString();
    c->setCurrentIndex(i);
  };
  auto type = [this](const char* name, const QString& text) {
    if (auto* e = option<QLineEdit>(name)) e->setText(text);
  };
  choose("optimizer", "sgd");
  type("momentum", "0.9");
  type("weight-decay", "0.01");
  type("warmup", "0.2");
  choose("schedule", "constant");
  type("grad-clip", "0.5");
  type("lambda", "0.3");
  choose("param", "qr");
  choose("init", "block_hadamard");
  choose("affine-bias", "no");
  choose("rotation-map", "exp");
  choose("mode", "layerwise");
  choose("loss", "mse");
  type("micro-batch", "2");
  type("loss-chunk", "128");
  choose("recompute", "no");
  type("kept-layers", "1");
  choose("teacher-cache", "yes");
  type("validation", "2");
  type("eval-every", "2");
  type("patience", "1");
  choose("deployed-check", "every");
  type("gptq-refresh", "4");
  // clang-format off
  const latmix::api::CompareRequest cli = cli_compare_request({
      "--model", kModel, "--methods", "quarot,spinquant,latmix", "--tasks", "frankenstein,alice", "--limit", "4",
      "--eval-seqlen", "128", "--quant", "mxint4", "--calib", kSample, "--samples", "8", "--seqlen", "64",
      "--seed", "7", "--steps", "5", "--batch", "3", "--lr", "0.002", "--optimizer", "sgd", "--momentum", "0.9",
      "--weight-decay", "0.01", "--warmup", "0.2", "--schedule", "constant", "--grad-clip", "0.5", "--lambda", "0.3",
      "--param", "qr", "--init", "block_hadamard", "--affine-bias", "no", "--rotation-map", "exp", "--mode",
      "layerwise", "--loss", "mse", "--micro-batch", "2", "--loss-chunk", "128", "--recompute", "no",
      "--kept-layers", "1", "--teacher-cache", "yes", "--validation", "2", "--eval-every", "2", "--patience", "1",
      "--deployed-check", "every", "--gptq-refresh", "4", "--out", "/reports/r"});
  // clang-format on
  EXPECT_EQ(json_of(form("/reports/r")), json_of(cli));
  // And the page's command line parses back into its request (the report folder a placeholder).
  const std::vector<std::string> words = shell_words(compare_->methodsCliCommand().toStdString());
  ASSERT_GE(words.size(), 2u);
  EXPECT_EQ(words[1], "compare");
  EXPECT_EQ(json_of(cli_compare_request({words.begin() + 2, words.end()})), json_of(form()));
}

TEST_F(CompareRequestDrift, EachSpecLineIsTheSameThroughTheCliAndTheSpecPage) {
  compare_->configure("frankenstein,arc_easy", "w=mxfp4,a=mxfp4\n\n  w=mxint4,a=none,weights=gptq  \n", 12);
  const latmix::api::EvaluateRequest page = compare_->specsRequest();
  ASSERT_EQ(page.quant.size(), 2u);
  latmix::api::EvaluateRequest cli = cli_evaluate_request({"--model", kModel, "--tasks", "frankenstein,arc_easy",
                                                           "--limit", "12", "--seqlen", "256", "--quant", "w=mxfp4,a=mxfp4"});
  // `latmix eval` takes one spec: the page's request is the CLI's with every spec line in turn.
  cli.quant = page.quant;
  EXPECT_EQ(latmix::api::to_json(page).dump(2), latmix::api::to_json(cli).dump(2));
  EXPECT_EQ(page.quant[1], "w=mxint4,a=none,weights=gptq");
  EXPECT_FALSE(page.calib_samples || page.calib_seqlen);  // the one GPTQ default (api/calibration.h)

  // GPTQ's calibration fields are `--calib`, `--calib-samples` and `--calib-seqlen`.
  auto* calib = compare_->findChild<QLineEdit*>("calib");
  auto* samples = compare_->findChild<QSpinBox*>("calib-samples");
  auto* seqlen = compare_->findChild<QSpinBox*>("calib-seqlen");
  ASSERT_TRUE(calib && samples && seqlen);
  calib->setText(QString::fromStdString(kSample));
  samples->setValue(8);
  seqlen->setValue(64);
  const latmix::api::EvaluateRequest sized = compare_->specsRequest();
  latmix::api::EvaluateRequest cli_sized =
      cli_evaluate_request({"--model", kModel, "--tasks", "frankenstein,arc_easy", "--limit", "12", "--seqlen", "256",
                            "--quant", "w=mxfp4,a=mxfp4", "--calib", kSample, "--calib-samples", "8",
                            "--calib-seqlen", "64"});
  cli_sized.quant = sized.quant;
  EXPECT_EQ(latmix::api::to_json(sized).dump(2), latmix::api::to_json(cli_sized).dump(2));
  EXPECT_EQ(sized.calib_samples, std::optional<int64_t>(8));
}

// The Explorer's Calibrate is `latmix stats` with the heatmap's five capture points.
TEST_F(LearnRequestDrift, TheExplorersCalibrationIsTheSameThroughTheCliAndTheExplorer) {
  auto* samples = explorer_->findChild<QSpinBox*>("samples");
  auto* seqlen = explorer_->findChild<QSpinBox*>("seqlen");
  auto* format = explorer_->findChild<QComboBox*>("format");
  auto* transform = explorer_->findChild<QComboBox*>("transform");
  auto* data = explorer_->findChild<QLineEdit*>("data");
  ASSERT_TRUE(samples && seqlen && format && transform && data);
  samples->setValue(4);
  seqlen->setValue(64);
  format->setCurrentText("mxint8");
  transform->setCurrentText("block-hadamard");
  data->setText(QString::fromStdString(kSample));
  const std::string points = "residual,attn_in,o_in,mlp_in,down_in";
  auto json_of = [](const latmix::api::StatisticsRequest& r) { return latmix::api::to_json(r).dump(2); };
  EXPECT_EQ(json_of(explorer_->statsRequest()),
            json_of(cli_statistics_request({"--model", kModel, "--data", kSample, "--samples", "4", "--seqlen", "64",
                                            "--format", "mxint8", "--transform", "block-hadamard", "--point",
                                            points})));
  // A learned plan: --transforms PREFIX, named in the result by its label (not an option of the CLI).
  explorer_->addPlanChoice("latmix run 1", "/plans/run1");
  latmix::api::StatisticsRequest plan =
      cli_statistics_request({"--model", kModel, "--data", kSample, "--samples", "4", "--seqlen", "64", "--format",
                              "mxint8", "--transforms", "/plans/run1", "--point", points});
  plan.transform_name = "latmix run 1";
  EXPECT_EQ(json_of(explorer_->statsRequest()), json_of(plan));
}

// The Analyze tab is `latmix analyze`; its scale rule and rounding are always said.
TEST_F(LearnRequestDrift, TheAnalysisIsTheSameThroughTheCliAndTheAnalyzeTab) {
  latmix::studio::AnalyzePanel panel(context_.get());
  panel.modelChanged();  // the open model's layers in the layer list
  latmix::api::AnalyzeRequest set;
  set.data = kSample;
  set.samples = 4;
  set.seqlen = 64;
  set.sampling = "random";
  set.seed = 3;
  set.layer = 2;
  set.point = "residual,mlp_in";
  set.format = "mxint4";
  set.scale = "ceil";
  set.round = "away";
  set.blocks = "16,32";
  set.detail_block = 16;
  set.steps = 5;
  set.lr = 0.002;
  set.holdout = 0.5;
  set.affine = "qr";
  set.batch = 2;
  panel.setRequest(set);
  // clang-format off
  const latmix::api::AnalyzeRequest cli = cli_analyze_request({
      "--model", kModel, "--data", kSample, "--samples", "4", "--seqlen", "64", "--sampling", "random", "--seed", "3",
      "--layer", "2", "--point", "residual,mlp_in", "--format", "mxint4", "--scale", "ceil", "--round", "away",
      "--blocks", "16,32", "--detail-block", "16", "--steps", "5", "--lr", "0.002", "--holdout", "0.5", "--affine",
      "qr", "--batch", "2"});
  // clang-format on
  auto json_of = [](const latmix::api::AnalyzeRequest& r) { return latmix::api::to_json(r).dump(2); };
  EXPECT_EQ(json_of(panel.request()), json_of(cli));
  // The tab's command line parses back into its request (the report folder a placeholder).
  const std::vector<std::string> words = shell_words(panel.cliCommand().toStdString());
  ASSERT_GE(words.size(), 2u);
  EXPECT_EQ(words[1], "analyze");
  latmix::api::AnalyzeRequest back = cli_analyze_request({words.begin() + 2, words.end()});
  EXPECT_EQ(back.out, "DIR");
  back.out.clear();
  EXPECT_EQ(json_of(back), json_of(panel.request()));
}

}  // namespace

namespace {

int run_cases(int argc, char** argv) {
  if (qEnvironmentVariableIsEmpty("QT_QPA_PLATFORM")) qputenv("QT_QPA_PLATFORM", "offscreen");
  // One data folder for both clients (the CLI's default_eval_data_dir(), the studio's studio_data_dir()).
  if (qEnvironmentVariableIsEmpty("LATMIX_DATA_DIR")) qputenv("LATMIX_DATA_DIR", LATMIX_TEST_DATA_DIR);
  QStandardPaths::setTestModeEnabled(true);
  QApplication app(argc, argv);
  QCoreApplication::setOrganizationName("LATMiX-test");
  QCoreApplication::setApplicationName("studio-learn-drift-tests");
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}

}  // namespace

// Run as `BINARY --latmix-zygote=SOCKET`, the zygote of its cases (tests/gui/CMakeLists.txt).
int main(int argc, char** argv) { return latmix::zygote::main_or_serve(argc, argv, run_cases); }
