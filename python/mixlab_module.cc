// mixlab._core: the C++ engine reached from Python (pybind11). python/mixlab/__init__.py is the documented surface;
// this file binds the pieces it is made of:
//   Model      a checkpoint in memory: config, named parameters as numpy views of the model's own buffer (writable,
//              zero-copy), forward (logits, optionally every layer's residual stream and mixer output), loss, mixing
//              maps per head, incremental generation with the CLI's strategies, evaluation on the run's task
//   TaskStream a task's seeded stream of batches: the same generator, seed and split rule the trainer and the
//              evaluation use
//   train / compare  the CLI's own commands from a list of flags; Ctrl-C stops at a step boundary
//   mixers / tasks   every registered name with its options and defaults
// A UsageError (bad input) becomes ValueError with the CLI's one-line message. Computation runs without the GIL.
#include <omp.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <numeric>

#include "experiments/analysis/analysis.h"
#include "experiments/analysis/decoding.h"
#include "experiments/cli/commands.h"
#include "experiments/cli/run_builder.h"
#include "experiments/run/evaluate.h"
#include "experiments/run/interrupt.h"
#include "experiments/tasks/task.h"
#include "mixers/registry.h"

namespace py = pybind11;

namespace mixlab {
namespace {

using IntArray = py::array_t<int32_t, py::array::c_style | py::array::forcecast>;
using FloatArray = py::array_t<float, py::array::c_style | py::array::forcecast>;

Split ParseSplit(const std::string& split) {
  if (split == "train") return Split::kTrain;
  if (split == "validation") return Split::kValidation;
  if (split == "test") return Split::kTest;
  throw UsageError("split '" + split + "' is not a split; allowed: train, validation, test");
}

// A copy of `n` floats as a numpy array of `shape`.
py::array_t<float> CopyOut(const float* data, std::vector<py::ssize_t> shape) {
  py::array_t<float> out(shape);
  std::copy_n(data, out.size(), out.mutable_data());
  return out;
}

// (B, T) tokens from a (T,) or (B, T) array, checked against the vocabulary.
std::pair<int, int> TokenShape(const IntArray& tokens, int vocab) {
  if (tokens.ndim() != 1 && tokens.ndim() != 2)
    throw UsageError("tokens must be a (T,) or (B, T) integer array; got " + std::to_string(tokens.ndim()) +
                     " dimensions");
  const int B = tokens.ndim() == 2 ? int(tokens.shape(0)) : 1, T = int(tokens.shape(tokens.ndim() - 1));
  if (B < 1 || T < 1) throw UsageError("tokens must hold at least one token");
  for (py::ssize_t i = 0; i < tokens.size(); ++i)
    if (tokens.data()[i] < 0 || tokens.data()[i] >= vocab)
      throw UsageError("token " + std::to_string(tokens.data()[i]) + " is outside the vocabulary [0, " +
                       std::to_string(vocab) + ")");
  return {B, T};
}

py::dict EvalDict(const EvalResult& e) {
  const auto [low, high] = WilsonInterval(e.correct, e.scored);
  py::dict d;
  d["length"] = e.length, d["loss"] = e.loss, d["accuracy"] = e.accuracy, d["ci95"] = py::make_tuple(low, high);
  d["scored"] = e.scored, d["correct"] = e.correct, d["sequences"] = e.sequences, d["majority_baseline"] = e.majority;
  return d;
}

class PyModel {
 public:
  PyModel(const std::string& checkpoint, int threads) : run_(LoadRun(checkpoint)), threads_(threads) {
    if (threads < 1) throw UsageError("threads must be >= 1");
  }
  LanguageModel& model() { return *run_.model; }
  std::string config_json() { return run_.spec.ToJson().dump(); }
  std::string step() const { return run_.step; }

  std::vector<std::string> parameter_names() const {
    std::vector<std::string> names;
    for (const auto& p : run_.model->params().params()) names.push_back(p.name);
    return names;
  }

  // A writable numpy view of one parameter in the model's own buffer; it keeps the model alive.
  py::array parameter(const std::string& name, py::object self) {
    ParamStore& store = run_.model->params();
    const int index = store.Find(name);
    if (index < 0) throw UsageError("no parameter '" + name + "'; see Model.parameter_names()");
    const NamedParam& p = store.params()[index];
    std::vector<py::ssize_t> shape(p.spec.shape.begin(), p.spec.shape.end()), strides(shape.size());
    py::ssize_t stride = sizeof(float);
    for (int i = int(shape.size()) - 1; i >= 0; --i) strides[i] = stride, stride *= shape[i];
    return py::array_t<float>(shape, strides, store.values() + p.offset, self);
  }

  py::object forward(const IntArray& tokens, bool residuals) {
    const auto [B, T] = TokenShape(tokens, model().vocab());
    {
      py::gil_scoped_release release;
      omp_set_num_threads(threads_);
      ForwardMode inference;
      inference.inference = !residuals;  // the residual streams are kept by a training-mode forward only
      model().Forward(tokens.data(), B, T, inference);
    }
    const int V = model().vocab(), D = model().d_model();
    auto logits = CopyOut(model().logits(), {B, T, V});
    if (!residuals) return logits;
    py::list streams, mixer_outputs;
    for (int l = 0; l <= model().n_layers(); ++l) streams.append(CopyOut(model().residual(l), {B, T, D}));
    for (int l = 0; l < model().n_layers(); ++l) mixer_outputs.append(CopyOut(model().mixer_output(l), {B, T, D}));
    py::dict out;
    out["logits"] = logits, out["residuals"] = streams, out["mixer_outputs"] = mixer_outputs;
    return out;
  }

  // Median seconds of `repeats` forwards of tokens timed inside C++ (what the CLI's evaluation runs per batch), the
  // reference bench/python_overhead.py sets Model.forward's time against.
  double time_forward(const IntArray& tokens, int repeats) {
    const auto [B, T] = TokenShape(tokens, model().vocab());
    py::gil_scoped_release release;
    omp_set_num_threads(threads_);
    std::vector<double> seconds;
    ForwardMode inference;
    inference.inference = true;
    for (int r = 0; r < std::max(1, repeats); ++r) {
      const auto start = std::chrono::steady_clock::now();
      model().Forward(tokens.data(), B, T, inference);
      seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
    std::nth_element(seconds.begin(), seconds.begin() + seconds.size() / 2, seconds.end());
    return seconds[seconds.size() / 2];
  }

  // Mean masked cross-entropy plus the auxiliary losses, as training computes it (no dropout).
  float loss(const IntArray& tokens, const IntArray& targets, const FloatArray& mask) {
    const auto [B, T] = TokenShape(tokens, model().vocab());
    if (targets.size() != tokens.size() || mask.size() != tokens.size())
      throw UsageError("tokens, targets and mask must have the same shape");
    TokenShape(targets, model().vocab());
    py::gil_scoped_release release;
    omp_set_num_threads(threads_);
    model().Forward(tokens.data(), B, T, ForwardMode{});
    return model().Loss(targets.data(), mask.data());
  }

  // One (T, T) map per head or channel group of `layer` on one sequence; rows scaled to sum to 1 when `normalized`
  // (what `mixlab analyze` shows and scores).
  py::array_t<float> mixing(const IntArray& tokens, int layer, bool normalized) {
    const auto [B, T] = TokenShape(tokens, model().vocab());
    if (B != 1) throw UsageError("mixing reads one sequence: give tokens of shape (T,)");
    if (layer < 0 || layer >= model().n_layers())
      throw UsageError("layer " + std::to_string(layer) + " outside [0, " + std::to_string(model().n_layers()) + ")");
    std::vector<RowMatrix> maps;
    {
      py::gil_scoped_release release;
      omp_set_num_threads(threads_);
      model().Forward(tokens.data(), 1, T, ForwardMode{});
      std::vector<int32_t> positions(T);
      std::iota(positions.begin(), positions.end(), 0);
      maps = model().mixer(layer).Mixing(model().mixer_input(layer), positions.data(), T);
    }
    py::array_t<float> out({py::ssize_t(maps.size()), py::ssize_t(T), py::ssize_t(T)});
    for (size_t h = 0; h < maps.size(); ++h) {
      const RowMatrix m = normalized ? NormalizeRows(maps[h]) : maps[h];
      std::copy_n(m.data(), int64_t(T) * T, out.mutable_data() + int64_t(h) * T * T);
    }
    return out;
  }

  std::vector<int> generate(const std::vector<int32_t>& prompt, int n_new, const DecodeSettings& s) {
    if (prompt.empty()) throw UsageError("generate needs a prompt of at least one token");
    for (int32_t t : prompt)
      if (t < 0 || t >= model().vocab())
        throw UsageError("prompt token " + std::to_string(t) + " is outside the vocabulary [0, " +
                         std::to_string(model().vocab()) + ")");
    if (n_new < 0) throw UsageError("n_new must be >= 0");
    std::vector<DecodeStep> steps;
    {
      py::gil_scoped_release release;
      omp_set_num_threads(threads_);
      steps = Generate(model(), prompt, n_new, s);
    }
    std::vector<int> tokens;
    for (const auto& step : steps) tokens.push_back(step.token);
    return tokens;
  }

  // The run's task scored at `length` on the fixed set `mixlab eval` scores (0 answers = the run's --test-answers).
  py::dict evaluate(int length, int64_t answers, const std::string& split) {
    const RunSpec& spec = run_.spec;
    const auto task = MakeTask(spec.train.task, spec.task_options);
    const int T = length ? length : spec.train.train_len;
    task->CheckLength(T);
    const Split s = ParseSplit(split);
    if (s == Split::kTrain) throw UsageError("evaluate draws from the validation or test split");
    const int64_t n = answers ? answers : s == Split::kTest ? spec.train.test_answers : spec.train.val_answers;
    EvalResult e;
    {
      py::gil_scoped_release release;
      omp_set_num_threads(threads_);
      e = Evaluate(model(), *task, T, n, EvalBatchSize(spec.train.batch, spec.train.train_len, T),
                   uint64_t(spec.train.seed), s);
    }
    return EvalDict(e);
  }

 private:
  LoadedRun run_;
  int threads_;
};

// The stream of batches a seed gives for (task, split, length): batch i of the train split is what step i trained on.
class TaskStream {
 public:
  TaskStream(const std::string& name, const std::map<std::string, std::string>& options, int length, int batch,
             uint64_t seed, const std::string& split)
      : task_(MakeTask(name, ResolveTaskOptions(name, options))),
        length_(length),
        batch_(batch),
        split_(ParseSplit(split)),
        rng_(SplitRng(seed, split_, length)) {
    if (batch < 1) throw UsageError("batch must be >= 1");
    split_ == Split::kTrain ? task_->CheckTrainLength(length) : task_->CheckLength(length);
  }
  py::dict next() {
    const Batch b = task_->Sample(batch_, length_, rng_, split_);
    py::array_t<int32_t> tokens({b.B, b.T}), targets({b.B, b.T});
    py::array_t<float> mask({b.B, b.T});
    std::copy(b.tokens.begin(), b.tokens.end(), tokens.mutable_data());
    std::copy(b.targets.begin(), b.targets.end(), targets.mutable_data());
    std::copy(b.mask.begin(), b.mask.end(), mask.mutable_data());
    py::dict d;
    d["tokens"] = tokens, d["targets"] = targets, d["mask"] = mask;
    return d;
  }
  int vocab() const { return task_->Vocab(); }

 private:
  std::unique_ptr<Task> task_;
  int length_, batch_;
  Split split_;
  Rng rng_;
};

// Runs a command with SIGINT turned into a stop request at the next step boundary; raises KeyboardInterrupt then.
template <class F>
auto Interruptible(F&& command) {
  ClearInterrupt();
  auto previous = std::signal(SIGINT, [](int) { RequestInterrupt(); });
  struct Restore {
    decltype(previous) handler;
    ~Restore() { std::signal(SIGINT, handler); }
  } restore{previous};
  try {
    py::gil_scoped_release release;
    return command();
  } catch (const Interrupted&) {
    PyErr_SetNone(PyExc_KeyboardInterrupt);
    throw py::error_already_set();
  }
}

// argv for a command from a list of flags.
struct Argv {
  std::vector<std::string> storage;
  std::vector<char*> pointers;
  Argv(const std::string& command, const std::vector<std::string>& flags) {
    storage.push_back(command);
    storage.insert(storage.end(), flags.begin(), flags.end());
    for (auto& s : storage) pointers.push_back(s.data());
  }
  int argc() const { return int(pointers.size()); }
  char** argv() { return pointers.data(); }
};

py::list OptionList(Options& options) {
  py::list out;
  for (const auto& f : ListOptions(options)) {
    py::dict d;
    d["name"] = f.name, d["type"] = f.type, d["default"] = f.value, d["help"] = f.help, d["allowed"] = f.allowed;
    out.append(d);
  }
  return out;
}

}  // namespace
}  // namespace mixlab

PYBIND11_MODULE(_core, m) {
  using namespace mixlab;
  m.doc() = "mixlab's C++ engine; use the `mixlab` package (python/mixlab/__init__.py)";
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const UsageError& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    } catch (const std::filesystem::filesystem_error& e) {
      PyErr_SetString(PyExc_ValueError, ("cannot use '" + e.path1().string() + "': " + e.code().message()).c_str());
    }
  });

  py::class_<DecodeSettings>(m, "DecodeSettings")
      .def(py::init<>())
      .def_readwrite("temperature", &DecodeSettings::temperature)
      .def_readwrite("top_k", &DecodeSettings::top_k)
      .def_readwrite("top_p", &DecodeSettings::top_p)
      .def_readwrite("repetition_penalty", &DecodeSettings::repetition_penalty)
      .def_readwrite("no_repeat_ngram", &DecodeSettings::no_repeat_ngram)
      .def_readwrite("beam_width", &DecodeSettings::beam_width)
      .def_readwrite("length_alpha", &DecodeSettings::length_alpha)
      .def_readwrite("seed", &DecodeSettings::seed);

  py::class_<PyModel>(m, "Model")
      .def(py::init<const std::string&, int>(), py::arg("checkpoint"), py::arg("threads"))
      .def_property_readonly("config_json", &PyModel::config_json)
      .def_property_readonly("step", &PyModel::step)
      .def_property_readonly("vocab", [](PyModel& self) { return self.model().vocab(); })
      .def_property_readonly("n_layers", [](PyModel& self) { return self.model().n_layers(); })
      .def("parameter_names", &PyModel::parameter_names)
      .def("parameter",
           [](py::object self, const std::string& name) { return self.cast<PyModel&>().parameter(name, self); })
      .def("forward", &PyModel::forward, py::arg("tokens"), py::arg("residuals") = false)
      .def("time_forward", &PyModel::time_forward, py::arg("tokens"), py::arg("repeats"))
      .def("loss", &PyModel::loss, py::arg("tokens"), py::arg("targets"), py::arg("mask"))
      .def("mixing", &PyModel::mixing, py::arg("tokens"), py::arg("layer"), py::arg("normalized") = true)
      .def("generate", &PyModel::generate, py::arg("prompt"), py::arg("n_new"), py::arg("settings"))
      .def("evaluate", &PyModel::evaluate, py::arg("length"), py::arg("answers"), py::arg("split"));

  py::class_<TaskStream>(m, "TaskStream")
      .def(py::init<const std::string&, const std::map<std::string, std::string>&, int, int, uint64_t,
                    const std::string&>(),
           py::arg("task"), py::arg("options"), py::arg("length"), py::arg("batch"), py::arg("seed"), py::arg("split"))
      .def("next", &TaskStream::next)
      .def_property_readonly("vocab", &TaskStream::vocab);

  m.def("train", [](const std::vector<std::string>& flags) {
    return Interruptible([&] {
      Argv args("train", flags);
      TrainResult result;
      if (!TrainWithFlags(args.argc(), args.argv(), result)) return std::string();
      return result.run_dir;
    });
  });
  m.def("compare", [](const std::vector<std::string>& flags) {
    return Interruptible([&] {
      Argv args("compare", flags);
      return CompareCommand(args.argc(), args.argv());
    });
  });
  m.def("mixer_names", [](const std::string& kind) {
    if (kind != "sequence" && kind != "channel")
      throw UsageError("kind '" + kind + "' is not a mixer kind; allowed: sequence, channel");
    return ListMixers(kind == "sequence" ? MixerKind::kSequence : MixerKind::kChannel);
  });
  m.def("mixer_info", [](const std::string& name, const std::string& kind) {
    const MixerInfo& info = FindMixer(name, kind == "sequence" ? MixerKind::kSequence : MixerKind::kChannel);
    auto options = info.make_options();
    py::dict d;
    d["name"] = info.name, d["kind"] = kind, d["help"] = info.help, d["positional"] = info.supported_pos;
    d["options"] = OptionList(*options);
    return d;
  });
  m.def("task_names", &ListTasks);
  m.def("task_info", [](const std::string& name) {
    const TaskInfo& info = FindTask(name);
    auto options = info.make_options();
    py::dict d;
    d["name"] = info.name, d["help"] = info.help, d["options"] = OptionList(*options);
    return d;
  });
}
