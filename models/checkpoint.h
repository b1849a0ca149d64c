// Checkpoints in the safetensors format: an 8-byte little-endian header length, a JSON header naming each
// tensor (dtype F32, shape, byte offsets), then the raw data. The header's __metadata__ holds the resolved
// model config ("config"), any caller metadata, and an FNV-1a checksum ("fnv1a64") of the header (without that
// key, as compact JSON) followed by the data, so a flipped byte anywhere is refused, not silently loaded. Loading
// also enforces the safetensors layout (entries contiguous in offset order, non-overlapping, covering the data
// exactly, sizes matching shapes) and bounds every size by the file's before allocating. Written atomically.
#pragma once
#include <map>
#include <string>

#include "models/language_model.h"

namespace mixlab {

void SaveCheckpoint(const std::string& path, const LanguageModel& model,
                    const std::map<std::string, std::string>& metadata = {});

// AdamW's moments (m, v over the flat parameter buffer) for resuming a run, in the same checksummed, atomically
// written format with caller metadata (the step). Loading refuses a file whose sizes differ from m and v.
void SaveOptimizerState(const std::string& path, const Buffer& m, const Buffer& v,
                        const std::map<std::string, std::string>& metadata);
std::map<std::string, std::string> LoadOptimizerState(const std::string& path, Buffer& m, Buffer& v);

// Reads only the metadata (including "config") of a checkpoint; throws UsageError on a missing or corrupt file.
std::map<std::string, std::string> ReadCheckpointMetadata(const std::string& path);

// Builds the model the checkpoint describes and loads its weights.
std::unique_ptr<LanguageModel> LoadCheckpoint(const std::string& path);
// Loads weights into an existing model; refuses a checkpoint whose tensors do not match the model's.
void LoadCheckpointInto(const std::string& path, LanguageModel& model);

}  // namespace mixlab
