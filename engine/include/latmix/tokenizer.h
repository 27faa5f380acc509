#pragma once
/// \file tokenizer.h
/// Room: engine/tokenizer/ (latmix_core, no LibTorch).
/// Text <-> token ids for the models LATMiX opens. Torch-free (part of latmix_core).
///
/// Three file formats are read:
///  - Hugging Face `tokenizer.json` with a BPE model: byte-level BPE (GPT-2, Llama 3, Qwen) and
///    SentencePiece-style BPE with byte fallback (Llama 2 / Mistral exports: Metaspace, or the
///    normalizer pair Prepend("▁") + Replace(" ", "▁")). Other model types (WordPiece, Unigram,
///    WordLevel) and unknown normalizer / pre-tokenizer / decoder / post-processor types are
///    refused with an Error rather than approximated.
///  - SentencePiece `tokenizer.model`, read by latmix itself (no libsentencepiece, whose bundled
///    protobuf clashes with LibTorch's): BPE models with the identity normalizer (Llama, Mistral,
///    llama2.c), encoded as sentencepiece 0.1.9x does; other model types or a normalizer with a
///    character map (UNIGRAM, nmt_nfkc) are refused naming the file.
///  - llama2.c `tokenizer.bin` (encoded and decoded exactly as llama2.c's run.c does).
///
/// Conventions shared by every implementation:
///  - encode() never adds BOS/EOS (Hugging Face `add_special_tokens=False`); encode_with_bos()
///    adds BOS. Added and special tokens written literally in the text ("<|begin_of_text|>",
///    "<s>") are matched and become their ids, as Hugging Face does for added tokens. The
///    llama2.c format has no added tokens: there the text is encoded as run.c does, literally.
///  - decode() skips nothing: special tokens come out as their text, the bytes of byte-level and
///    byte-fallback tokens are joined. The result is the raw bytes; it is valid UTF-8 whenever
///    the ids came from encode() of valid UTF-8 (a slice of ids may cut a character).
///  - All methods are const and safe to call from several threads at once.
///  - Errors (unreadable or malformed files, ids out of range) throw latmix::Error naming the
///    file and the problem.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace latmix {

namespace detail {
struct TokenizerAccess;
}

/// Special-token facts of a tokenizer, from the tokenizer file and, when present,
/// tokenizer_config.json / config.json beside it.
struct SpecialTokenIds {
  std::optional<int32_t> bos;  ///< beginning-of-sequence id, if the tokenizer has one
  std::optional<int32_t> eos;  ///< end-of-sequence id, if the tokenizer has one
  bool add_bos = false;        ///< whether the model expects BOS prepended by default
};

/// A loaded tokenizer. Create with load_tokenizer() or load_llama2c_tokenizer().
class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  /// Encodes text to ids WITHOUT adding BOS/EOS (like HF add_special_tokens=False). Added and
  /// special tokens that appear literally in the text are matched (like HF tokenizers does for
  /// added tokens). Arbitrary bytes are accepted; byte-level tokenizers encode invalid UTF-8
  /// byte by byte, the others map it to byte-fallback or unknown tokens.
  virtual std::vector<int32_t> encode(std::string_view text) const = 0;

  /// Joins the text of the ids. Skips nothing (special tokens come out as their text); the
  /// bytes of byte-level / <0xNN> byte-fallback tokens are merged back into characters.
  /// SentencePiece and llama2.c drop the dummy-prefix space of the first token and of a token
  /// following BOS, as sentencepiece and run.c do. Throws Error for an id out of range.
  virtual std::string decode(const std::vector<int32_t>& ids) const = 0;

  /// The vocabulary entry of one id as the file stores it (HF convert_ids_to_tokens): "Ġthe",
  /// "▁the", "<0x0A>", "<|begin_of_text|>"; for llama2.c the stored piece (" the", "\n<s>\n").
  /// Use decode({id}) for the text it stands for. Throws Error for an id out of range.
  virtual std::string token_text(int32_t id) const = 0;

  /// The id of a vocabulary entry written as token_text() writes it, if it exists.
  virtual std::optional<int32_t> token_id(std::string_view token_text) const = 0;

  /// Number of ids (largest id + 1, added tokens included).
  virtual int32_t vocab_size() const = 0;

  std::optional<int32_t> bos_id() const { return special_.bos; }
  std::optional<int32_t> eos_id() const { return special_.eos; }

  /// Whether the model expects BOS prepended by default: tokenizer_config.json's add_bos_token
  /// when given, else the tokenizer.json post_processor template (a special token before $A);
  /// true for SentencePiece .model and llama2.c .bin when they define BOS (Llama convention).
  bool add_bos_by_default() const { return special_.add_bos; }

  /// encode() plus BOS in front when add_bos (default: add_bos_by_default()). Throws Error when
  /// BOS is asked for and the tokenizer has none.
  std::vector<int32_t> encode_with_bos(std::string_view text, std::optional<bool> add_bos = std::nullopt) const;

  /// What was loaded, e.g. "byte-level BPE (tokenizer.json)", "SentencePiece (tokenizer.model)",
  /// "llama2.c tokenizer.bin".
  virtual std::string kind() const = 0;

  /// The file the tokenizer was read from.
  const std::string& source_file() const { return source_file_; }

 protected:
  Tokenizer(std::string source_file, SpecialTokenIds special)
      : source_file_(std::move(source_file)), special_(special) {}
  /// Throws Error naming the source file when id is not in [0, vocab_size()).
  void check_id(int32_t id) const;

 private:
  friend struct detail::TokenizerAccess;
  std::string source_file_;
  SpecialTokenIds special_;
};

/// Loads a tokenizer from a file or a model folder.
///  - file: `*.json` (Hugging Face tokenizer.json), `*.model` (SentencePiece), `*.bin` (llama2.c
///    tokenizer; the vocab size is the number of entries up to the end of the file).
///  - folder: tokenizer.json if present, else tokenizer.model, else tokenizer.bin.
/// tokenizer_config.json beside the file, when present, sets bos_token / eos_token /
/// add_bos_token; config.json's bos_token_id / eos_token_id fill in what is still unknown.
/// Throws Error naming the file (or the folder, when it holds no tokenizer) and the problem.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path);

/// llama2.c tokenizer.bin with an explicit vocab size (the .bin stores no count; it comes from
/// the model header). Throws Error with file and offset when the file is shorter than that.
std::unique_ptr<Tokenizer> load_llama2c_tokenizer(const std::string& path, int32_t vocab_size);

}  // namespace latmix
