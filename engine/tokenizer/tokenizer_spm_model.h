#pragma once
// Private to the tokenizer implementation files: a SentencePiece ModelProto (tokenizer.model)
// read without libsentencepiece or protobuf (tokenizer_spm_model.cpp).
//
// Why not libsentencepiece: Debian's libsentencepiece.so.0 carries its own protobuf-lite 3.14 and
// exports its 1602 google::protobuf symbols, and LibTorch needs libprotobuf.so.32 (3.21). In one
// process one of the two copies interposes the other whatever the link order: sentencepiece's
// generated code ran against 3.21 and failed protobuf's version check ("This program requires
// version 3.21.12 ... compiled against 3.14.0"), and the other order crashed LibTorch at start-up.
// The file is a small, documented protobuf message; reading it here removes the second copy.

#include <cstdint>
#include <string>
#include <vector>

namespace latmix::tok {

/// sentencepiece_model.proto's ModelProto.SentencePiece.Type.
enum class SpmPieceType : int { Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6 };

struct SpmPiece {
  std::string piece;
  float score = 0.0f;
  SpmPieceType type = SpmPieceType::Normal;
};

/// What encoding and decoding need from a ModelProto (field numbers of sentencepiece 0.1.9x).
struct SpmModel {
  std::vector<SpmPiece> pieces;  ///< ModelProto.pieces (1), in id order
  int model_type = 1;            ///< TrainerSpec.model_type (2.3): 1 UNIGRAM, 2 BPE, 3 WORD, 4 CHAR
  bool byte_fallback = false;    ///< TrainerSpec.byte_fallback (2.35)
  bool treat_whitespace_as_suffix = false;  ///< TrainerSpec (2.24)
  std::string bos_piece = "<s>", eos_piece = "</s>";  ///< TrainerSpec (2.46, 2.47)
  std::string normalizer_name;         ///< NormalizerSpec.name (3.1)
  bool has_charsmap = false;           ///< NormalizerSpec.precompiled_charsmap (3.2) is not empty
  bool add_dummy_prefix = true;        ///< NormalizerSpec (3.3)
  bool remove_extra_whitespaces = true;  ///< NormalizerSpec (3.4)
  bool escape_whitespaces = true;      ///< NormalizerSpec (3.5)
  bool has_denormalizer_charsmap = false;  ///< ModelProto.denormalizer_spec (5) with a character map
};

/// Parses a serialized ModelProto strictly: every length and varint inside the bytes, known
/// fields with their wire types, unknown fields skipped, groups refused. Throws Error naming
/// `file`, the field and the byte offset. Does not judge whether the model is supported.
SpmModel parse_spm_model(const std::string& bytes, const std::string& file);

}  // namespace latmix::tok
