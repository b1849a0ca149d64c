#include "models/checkpoint.h"

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <vector>

#include "mixers/tensor.h"

namespace mixlab {
namespace {

uint64_t Fnv1a64(const char* data, size_t n) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (size_t i = 0; i < n; ++i) {
    h ^= uint8_t(data[i]);
    h *= 0x100000001b3ULL;
  }
  return h;
}

struct Parsed {
  nlohmann::json header;
  std::vector<char> data;
};

[[noreturn]] void Refuse(const std::string& path, const std::string& why) {
  throw UsageError("checkpoint '" + path + "' refused: " + why);
}

Parsed ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) Refuse(path, "file not found or unreadable");
  in.seekg(0, std::ios::end);
  const int64_t size = in.tellg();
  in.seekg(0);
  if (size < 8) Refuse(path, "truncated (shorter than the 8-byte header length)");
  uint64_t header_len = 0;
  in.read(reinterpret_cast<char*>(&header_len), 8);
  if (header_len == 0 || int64_t(header_len) > size - 8) Refuse(path, "truncated or not a safetensors file (bad header length)");
  std::string header(header_len, '\0');
  in.read(header.data(), int64_t(header_len));
  Parsed p;
  try {
    p.header = nlohmann::json::parse(header);
  } catch (const nlohmann::json::exception&) {
    Refuse(path, "header is not valid JSON");
  }
  p.data.resize(size - 8 - int64_t(header_len));
  in.read(p.data.data(), int64_t(p.data.size()));
  if (!in) Refuse(path, "read error");
  const auto& meta = p.header.value("__metadata__", nlohmann::json::object());
  if (!meta.contains("data_fnv1a64")) Refuse(path, "no data checksum in metadata (not written by mixlab)");
  if (meta["data_fnv1a64"].get<std::string>() != std::to_string(Fnv1a64(p.data.data(), p.data.size())))
    Refuse(path, "data checksum mismatch (file is corrupt or truncated)");
  return p;
}


// One named F32 tensor to write.
struct TensorOut {
  std::string name;
  std::vector<int64_t> shape;
  const float* data;
};

// Writes tensors contiguously (in order) with the metadata and the data checksum, to path.tmp then renamed.
void WriteSafetensors(const std::string& path, const std::vector<TensorOut>& tensors, nlohmann::json meta) {
  nlohmann::json header;
  int64_t offset = 0;
  for (const auto& t : tensors) {
    int64_t numel = 1;
    for (auto d : t.shape) numel *= d;
    header[t.name] = {{"dtype", "F32"}, {"shape", t.shape}, {"data_offsets", {offset, offset + numel * int64_t(sizeof(float))}}};
    offset += numel * int64_t(sizeof(float));
  }
  std::vector<char> data;
  data.reserve(size_t(offset));
  for (const auto& t : tensors) {
    int64_t numel = 1;
    for (auto d : t.shape) numel *= d;
    const char* bytes = reinterpret_cast<const char*>(t.data);
    data.insert(data.end(), bytes, bytes + numel * int64_t(sizeof(float)));
  }
  meta["format"] = "mixlab";
  meta["data_fnv1a64"] = std::to_string(Fnv1a64(data.data(), data.size()));
  header["__metadata__"] = meta;
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // align the data section to 8 bytes
  const uint64_t len = text.size();

  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw UsageError("cannot write checkpoint '" + tmp + "'");
    out.write(reinterpret_cast<const char*>(&len), 8);
    out.write(text.data(), int64_t(text.size()));
    out.write(data.data(), int64_t(data.size()));
    out.flush();
    if (!out) throw UsageError("error while writing checkpoint '" + tmp + "' (disk full?)");
  }
  std::filesystem::rename(tmp, path);
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
  for (const auto& p : model.params().params()) tensors.push_back({p.name, p.spec.shape, model.params().values() + p.offset});
  nlohmann::json meta = MetadataJson(metadata);
  meta["config"] = model.config().ToJson().dump();
  WriteSafetensors(path, tensors, meta);
}

void SaveOptimizerState(const std::string& path, const Buffer& m, const Buffer& v,
                        const std::map<std::string, std::string>& metadata) {
  WriteSafetensors(path, {{"m", {int64_t(m.size())}, m.data()}, {"v", {int64_t(v.size())}, v.data()}}, MetadataJson(metadata));
}

std::map<std::string, std::string> LoadOptimizerState(const std::string& path, Buffer& m, Buffer& v) {
  Parsed p = ReadFile(path);
  std::map<std::string, std::string> out;
  for (const auto& [k, val] : p.header["__metadata__"].items())
    if (val.is_string()) out[k] = val.get<std::string>();
  for (auto [name, buf] : {std::pair<const char*, Buffer*>{"m", &m}, {"v", &v}}) {
    if (!p.header.contains(name)) Refuse(path, std::string("optimizer state lacks tensor '") + name + "'");
    try {
      const auto off = p.header[name].at("data_offsets").get<std::vector<int64_t>>();
      if (off.size() != 2 || off[0] < 0 || off[1] > int64_t(p.data.size()) || off[1] - off[0] != int64_t(buf->size() * sizeof(float)))
        Refuse(path, std::string("optimizer tensor '") + name + "' does not match the model's " + std::to_string(buf->size()) + " parameters");
      std::memcpy(buf->data(), p.data.data() + off[0], size_t(off[1] - off[0]));
    } catch (const nlohmann::json::exception&) {
      Refuse(path, std::string("malformed entry for optimizer tensor '") + name + "'");
    }
  }
  return out;
}

std::map<std::string, std::string> ReadCheckpointMetadata(const std::string& path) {
  Parsed p = ReadFile(path);
  std::map<std::string, std::string> out;
  for (const auto& [k, v] : p.header["__metadata__"].items())
    if (v.is_string()) out[k] = v.get<std::string>();
  if (!out.count("config")) Refuse(path, "no model config in metadata");
  return out;
}

void LoadCheckpointInto(const std::string& path, LanguageModel& model) {
  Parsed p = ReadFile(path);
  ParamStore& store = model.params();
  size_t tensors = 0;
  for (const auto& [name, info] : p.header.items()) {
    if (name == "__metadata__") continue;
    ++tensors;
    const int idx = store.Find(name);
    if (idx < 0) Refuse(path, "tensor '" + name + "' does not exist in the model");
    const auto& spec = store.params()[idx].spec;
    try {
      if (info.at("dtype") != "F32") Refuse(path, "tensor '" + name + "' has dtype " + info.at("dtype").dump() + ", expected F32");
      if (info.at("shape").get<std::vector<int64_t>>() != spec.shape)
        Refuse(path, "tensor '" + name + "' has shape " + info.at("shape").dump() + ", the model expects " +
                         nlohmann::json(spec.shape).dump());
      const auto off = info.at("data_offsets").get<std::vector<int64_t>>();
      if (off.size() != 2 || off[0] < 0 || off[1] > int64_t(p.data.size()) ||
          off[1] - off[0] != spec.Numel() * int64_t(sizeof(float)))
        Refuse(path, "tensor '" + name + "' has bad data offsets");
      std::memcpy(store.values() + store.params()[idx].offset, p.data.data() + off[0], size_t(off[1] - off[0]));
    } catch (const nlohmann::json::exception& e) {
      Refuse(path, "malformed entry for tensor '" + name + "'");
    }
  }
  if (tensors != store.params().size())
    Refuse(path, "holds " + std::to_string(tensors) + " tensors, the model has " + std::to_string(store.params().size()));
}

std::unique_ptr<LanguageModel> LoadCheckpoint(const std::string& path) {
  auto meta = ReadCheckpointMetadata(path);
  nlohmann::json cfg;
  try {
    cfg = nlohmann::json::parse(meta.at("config"));
  } catch (const nlohmann::json::exception&) {
    Refuse(path, "model config in metadata is not valid JSON");
  }
  auto model = std::make_unique<LanguageModel>(ModelConfig::FromJson(cfg));
  LoadCheckpointInto(path, *model);
  return model;
}

}  // namespace mixlab
