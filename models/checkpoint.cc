#include "models/checkpoint.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <vector>

#include "mixers/ops/tensor.h"
#include "models/file_io.h"
#include "models/json_text.h"

namespace mixlab {
namespace {

uint64_t Fnv1a64(const char* data, size_t n, uint64_t h = 0xcbf29ce484222325ULL) {
  for (size_t i = 0; i < n; ++i) {
    h ^= uint8_t(data[i]);
    h *= 0x100000001b3ULL;
  }
  return h;
}

// A tensor entry of the header, checked: F32, a shape whose size matches its byte range.
struct TensorEntry {
  std::vector<int64_t> shape;
  int64_t begin = 0, end = 0;
};

struct Parsed {
  std::map<std::string, std::string> metadata;
  std::map<std::string, TensorEntry> tensors;
  std::vector<char> data;
};

constexpr int64_t kMaxHeaderBytes = 64 << 20;
constexpr const char* kChecksumKey = "fnv1a64";  // over the header (without this key) and the data

[[noreturn]] void Refuse(const std::string& path, const std::string& why) {
  throw UsageError("checkpoint '" + path + "' refused: " + why);
}

uint64_t Checksum(const nlohmann::json& header, const std::vector<char>& data) {
  nlohmann::json covered = header;
  covered["__metadata__"].erase(kChecksumKey);
  const std::string text = covered.dump();
  return Fnv1a64(data.data(), data.size(), Fnv1a64(text.data(), text.size()));
}

TensorEntry ParseEntry(const std::string& path, const std::string& name, const nlohmann::json& info,
                       int64_t data_size) {
  const auto bad = [&](const std::string& why) { Refuse(path, "tensor '" + name + "' " + why); };
  if (!info.is_object() || !info.contains("dtype") || !info.contains("shape") || !info.contains("data_offsets"))
    bad("is not an object with dtype, shape and data_offsets");
  if (info["dtype"] != "F32") bad("has dtype " + info["dtype"].dump() + "; mixlab reads F32 only");
  TensorEntry e;
  int64_t numel = 1;
  if (!info["shape"].is_array()) bad("has a shape that is not a list");
  for (const auto& d : info["shape"]) {
    if (!d.is_number_integer() || d.get<int64_t>() < 0) bad("has an impossible shape " + info["shape"].dump());
    e.shape.push_back(d.get<int64_t>());
  }
  for (int64_t dim : e.shape) {  // bounded by the data size at every factor, so the product cannot overflow
    if (dim > 0 && numel > data_size / dim) bad("has a shape " + info["shape"].dump() + " larger than the file's data");
    numel *= dim;
  }
  const auto& off = info["data_offsets"];
  if (!off.is_array() || off.size() != 2 || !off[0].is_number_integer() || !off[1].is_number_integer())
    bad("has data_offsets that are not two integers");
  e.begin = off[0].get<int64_t>(), e.end = off[1].get<int64_t>();
  if (e.begin < 0 || e.end < e.begin || e.end > data_size)
    bad("has data_offsets " + off.dump() + " outside the data section");
  if (e.end - e.begin != numel * int64_t(sizeof(float)))
    bad("has data_offsets " + off.dump() + " that do not hold its shape " + info["shape"].dump() + " of F32");
  return e;
}

// Reads and checks a checkpoint: the header length against the file size, the header's JSON, every tensor entry,
// the safetensors layout (entries contiguous in offset order, non-overlapping, covering the data exactly) and the
// checksum over header and data.
Parsed ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec))
    Refuse(path, std::filesystem::exists(path, ec) ? "not a regular file" : "file not found");
  if (!in) Refuse(path, "unreadable");
  in.seekg(0, std::ios::end);
  const int64_t size = in.tellg();
  in.seekg(0);
  if (size < 8) Refuse(path, "truncated (shorter than the 8-byte header length)");
  uint64_t header_len = 0;
  in.read(reinterpret_cast<char*>(&header_len), 8);
  if (header_len < 2 || header_len > uint64_t(std::min<int64_t>(size - 8, kMaxHeaderBytes)))
    Refuse(path, "truncated or not a safetensors file (header length " + std::to_string(header_len) + " in a file of " +
                     std::to_string(size) + " bytes)");
  std::string text(header_len, '\0');
  in.read(text.data(), int64_t(header_len));
  const nlohmann::json header = ParseJsonText(text, "checkpoint '" + path + "' header");
  if (!header.is_object()) Refuse(path, "header is not a JSON object");
  Parsed p;
  p.data.resize(size_t(size - 8 - int64_t(header_len)));
  in.read(p.data.data(), int64_t(p.data.size()));
  if (!in) Refuse(path, "read error");
  const auto meta = header.find("__metadata__");
  if (meta == header.end() || !meta->is_object()) Refuse(path, "no __metadata__ object (not written by mixlab)");
  for (const auto& [k, v] : meta->items()) {
    if (!v.is_string()) Refuse(path, "metadata '" + k + "' is not a string");
    p.metadata[k] = v.get<std::string>();
  }
  if (!p.metadata.count(kChecksumKey))
    Refuse(path, "no header-and-data checksum in its metadata (not written by this version of mixlab)");
  if (p.metadata[kChecksumKey] != std::to_string(Checksum(header, p.data)))
    Refuse(path, "checksum mismatch (the file is corrupt or truncated)");
  std::vector<std::pair<int64_t, std::string>> order;
  for (const auto& [name, info] : header.items()) {
    if (name == "__metadata__") continue;
    p.tensors[name] = ParseEntry(path, name, info, int64_t(p.data.size()));
    order.emplace_back(p.tensors[name].begin, name);
  }
  std::sort(order.begin(), order.end());
  int64_t expected = 0;
  for (const auto& [begin, name] : order) {
    if (begin != expected)
      Refuse(path, "tensor '" + name + "' starts at byte " + std::to_string(begin) + " of the data, expected " +
                       std::to_string(expected) + " (tensors must be contiguous, non-overlapping and in order)");
    expected = p.tensors[name].end;
  }
  if (expected != int64_t(p.data.size()))
    Refuse(path, "the tensors cover " + std::to_string(expected) + " of the " + std::to_string(p.data.size()) +
                     " data bytes");
  return p;
}

// One named F32 tensor to write.
struct TensorOut {
  std::string name;
  std::vector<int64_t> shape;
  const float* data;
};

// Writes tensors contiguously (in order) with the metadata and the checksum, atomically (see WriteFileAtomic).
void WriteSafetensors(const std::string& path, const std::vector<TensorOut>& tensors, nlohmann::json meta) {
  nlohmann::json header;
  int64_t offset = 0;
  std::vector<char> data;
  for (const auto& t : tensors) {
    int64_t numel = 1;
    for (auto d : t.shape) numel *= d;
    const int64_t bytes = numel * int64_t(sizeof(float));
    header[t.name] = {{"dtype", "F32"}, {"shape", t.shape}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    data.insert(data.end(), reinterpret_cast<const char*>(t.data), reinterpret_cast<const char*>(t.data) + bytes);
  }
  meta["format"] = "mixlab";
  header["__metadata__"] = meta;
  header["__metadata__"][kChecksumKey] = std::to_string(Checksum(header, data));
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // align the data section to 8 bytes
  const uint64_t len = text.size();
  WriteFileAtomic(path, {std::string_view(reinterpret_cast<const char*>(&len), 8), text,
                         std::string_view(data.data(), data.size())});
}

nlohmann::json MetadataJson(const std::map<std::string, std::string>& metadata) {
  nlohmann::json meta = nlohmann::json::object();
  for (const auto& [k, v] : metadata) meta[k] = v;
  return meta;
}

}  // namespace

void SaveCheckpoint(const std::string& path, const LanguageModel& model,
                    const std::map<std::string, std::string>& metadata) {
  std::vector<TensorOut> tensors;
  for (const auto& p : model.params().params())
    tensors.push_back({p.name, p.spec.shape, model.params().values() + p.offset});
  nlohmann::json meta = MetadataJson(metadata);
  meta["config"] = model.config().ToJson().dump();
  WriteSafetensors(path, tensors, meta);
}

void SaveOptimizerState(const std::string& path, const Buffer& m, const Buffer& v,
                        const std::map<std::string, std::string>& metadata) {
  WriteSafetensors(path, {{"m", {int64_t(m.size())}, m.data()}, {"v", {int64_t(v.size())}, v.data()}},
                   MetadataJson(metadata));
}

std::map<std::string, std::string> LoadOptimizerState(const std::string& path, Buffer& m, Buffer& v) {
  Parsed p = ReadFile(path);
  for (auto [name, buf] : {std::pair<const char*, Buffer*>{"m", &m}, {"v", &v}}) {
    const auto it = p.tensors.find(name);
    if (it == p.tensors.end()) Refuse(path, std::string("optimizer state lacks tensor '") + name + "'");
    if (it->second.end - it->second.begin != int64_t(buf->size() * sizeof(float)))
      Refuse(path, std::string("optimizer tensor '") + name + "' does not match the model's " +
                       std::to_string(buf->size()) + " parameters");
    std::memcpy(buf->data(), p.data.data() + it->second.begin, size_t(it->second.end - it->second.begin));
  }
  if (p.tensors.size() != 2)
    Refuse(path, "optimizer state holds " + std::to_string(p.tensors.size()) + " tensors, expected m and v");
  return p.metadata;
}

std::map<std::string, std::string> ReadCheckpointMetadata(const std::string& path) {
  Parsed p = ReadFile(path);
  if (!p.metadata.count("config")) Refuse(path, "no model config in metadata");
  return p.metadata;
}

void LoadCheckpointInto(const std::string& path, LanguageModel& model) {
  Parsed p = ReadFile(path);
  ParamStore& store = model.params();
  for (const auto& [name, entry] : p.tensors) {
    const int idx = store.Find(name);
    if (idx < 0) Refuse(path, "tensor '" + name + "' does not exist in the model");
    const auto& spec = store.params()[idx].spec;
    if (entry.shape != spec.shape)
      Refuse(path, "tensor '" + name + "' has shape " + nlohmann::json(entry.shape).dump() + ", the model expects " +
                       nlohmann::json(spec.shape).dump());
    std::memcpy(store.values() + store.params()[idx].offset, p.data.data() + entry.begin,
                size_t(entry.end - entry.begin));
  }
  if (p.tensors.size() != store.params().size())
    Refuse(path, "holds " + std::to_string(p.tensors.size()) + " tensors, the model has " +
                     std::to_string(store.params().size()));
  if (const auto step = p.metadata.find("step"); step != p.metadata.end()) {
    char* end = nullptr;
    const long long steps = std::strtoll(step->second.c_str(), &end, 10);
    if (step->second.empty() || *end != '\0' || steps < 0)
      Refuse(path, "metadata step '" + step->second + "' is not a step count");
    model.RestoreTrainedSteps(steps);
  }
}

std::unique_ptr<LanguageModel> LoadCheckpoint(const std::string& path) {
  const auto meta = ReadCheckpointMetadata(path);
  const ModelConfig config =
      ModelConfig::FromJson(ParseJsonText(meta.at("config"), "checkpoint '" + path + "' model config"));
  const int64_t planned =
      LanguageModel::PlannedParams(config);  // before allocating: a crafted config cannot ask for more
  const int64_t stored = int64_t(std::filesystem::file_size(path));
  if (planned > stored / int64_t(sizeof(float)))
    Refuse(path, "its config describes " + std::to_string(planned) + " parameters, more than the file's " +
                     std::to_string(stored) + " bytes hold");
  auto model = std::make_unique<LanguageModel>(config);
  LoadCheckpointInto(path, *model);
  return model;
}

}  // namespace mixlab
