// What a model serves (--task) and, for embeddings, how it pools, read as vLLM reads it: the
// sentence-transformers files of the model directory (modules.json, the Pooling module's
// config.json, a Normalize module, sentence_bert_config.json, config_sentence_transformers.json),
// Matryoshka support from config.json (is_matryoshka, matryoshka_dimensions), then
// --pooler-config over both. Anything in those files that would change the vectors and that
// inferd does not do is an Error naming the file and the key, never ignored.
#pragma once

#include <string>

#include "inferd/engine.h"

namespace inferd {

// True when `model_dir` holds a sentence-transformers modules.json (what --task auto looks for).
bool has_sentence_transformers_config(const std::string& model_dir);

// The pooling of a sentence-transformers model directory: modules.json's Pooling module (its
// config.json: pooling_mode_lasttoken -> LAST, pooling_mode_mean_tokens -> MEAN,
// pooling_mode_cls_token -> CLS) and whether a Normalize module follows. Without modules.json,
// or without a Pooling module in it, the type stays `defaults`'s. Throws Error naming the file
// and key of what it cannot honour (another pooling mode, include_prompt false, a Dense module,
// do_lower_case).
EngineConfig::Pooling read_sentence_transformers_pooling(const std::string& model_dir,
                                                         EngineConfig::Pooling defaults = {});

// config.json's is_matryoshka (any size) and matryoshka_dimensions (only those) into `pooling`.
void read_matryoshka(const std::string& model_dir, EngineConfig::Pooling& pooling);

// vLLM's --pooler-config JSON over `pooling`: {"pooling_type": "LAST" | "MEAN" | "CLS",
// "normalize": bool} (also vLLM's newer names seq_pooling_type and use_activation). Throws
// Error naming --pooler-config and the key for anything else.
void apply_pooler_config(const std::string& json_text, EngineConfig::Pooling& pooling);

// --task (generate | embed | auto: embed when the directory has a sentence-transformers
// modules.json) and --pooler-config into engine.task and engine.pooling. Throws Error naming
// the flag, file or key.
void resolve_task_and_pooling(const std::string& model_dir, const std::string& task,
                              const std::string& pooler_config, EngineConfig& engine);

}  // namespace inferd
