#pragma once
// What the use-case commands print on stdout, as a function of the typed result alone: a command
// run in this process and one run on a `latmix serve` engine (whose result comes back as JSON and
// is read by the api's *_result_from_json) print the same text. tests/results checks that the text
// of a result read back from its JSON is the text of the result itself.

#include <cstdarg>
#include <string>

#include "latmix/api/analyze.h"
#include "latmix/api/block.h"
#include "latmix/api/evaluate.h"
#include "latmix/api/export.h"
#include "latmix/api/learn.h"
#include "latmix/api/model.h"
#include "latmix/api/statistics.h"

namespace latmix::cli {

/// printf into the end of `out`.
void appendf(std::string& out, const char* format, ...) __attribute__((format(printf, 2, 3)));

/// `latmix info` (with --overview: the weight statistics' table after the summary when computed).
std::string format_info_text(const api::ModelDescription& description);
/// `latmix stats`: the data line, one table per capture point, the time and --out.
std::string format_stats_text(const api::StatisticsResult& result);
/// `latmix mx block`: where the block is, the block before (and after the transform) and the comparison.
std::string format_block_text(const api::BlockExplanation& explanation);
/// `latmix mx block`'s notes on stderr: the token or block asked for was past the end.
std::string format_block_notes(const api::BlockExplanation& explanation, const api::ExplainBlockRequest& request);
/// `latmix analyze`: the data line, one table per capture, the time and the report written.
std::string format_analyze_text(const api::AnalyzeResult& result);
/// `latmix eval`: the table (FP, and with a spec the first spec's column and recovery) and the conventions.
std::string format_eval_text(const api::EvaluateResult& result);
/// `latmix compare`: the report's Markdown and the files written.
std::string format_compare_text(const api::CompareResult& result);
/// `latmix learn`: the method, settings, loss or fixed transforms, validation, conditions, files.
std::string format_learn_text(const api::LearnResult& result);
/// `latmix export`: api::describe().
std::string format_export_text(const api::ExportResult& result);
/// `latmix verify`: the checks and the verdict (the notes go to stderr, see format_verify_notes()).
std::string format_verify_text(const api::VerifyResult& result);
/// `latmix verify`'s notes on stderr ("note: no perplexity check (--no-ppl)").
std::string format_verify_notes(const api::VerifyResult& result);

}  // namespace latmix::cli
