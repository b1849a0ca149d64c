// Parity with an independent reference: fixtures written by tests/make_fixtures.py, which implements each
// mixer from its paper's equations in PyTorch (double precision). mixlab must match the output and the
// gradients of <dy, y> with respect to the input and every parameter.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "tests/test_util.h"

namespace mixlab::testing {
namespace {

std::vector<std::string> FixtureFiles() {
  std::vector<std::string> files;
  for (const auto& e : std::filesystem::directory_iterator(MIXLAB_SOURCE_DIR "/tests/fixtures"))
    if (e.path().extension() == ".json") files.push_back(e.path().string());
  std::sort(files.begin(), files.end());
  return files;
}

class Parity : public ::testing::TestWithParam<std::string> {};

TEST_P(Parity, MatchesPyTorchReference) {
  std::ifstream in(GetParam());
  const auto j = nlohmann::json::parse(in);
  const int B = j["B"], T = j["T"], D = j["D"];
  const MixerKind kind = j.value("kind", "sequence") == "channel" ? MixerKind::kChannel : MixerKind::kSequence;
  MixerHarness h(j["mixer"], kind, MixerDims{D, 1, 0, j["pos"]}, j["options"].get<OptionMap>());
  for (const auto& p : h.store.params()) {
    ASSERT_TRUE(j["params"].contains(p.name)) << "fixture lacks parameter " << p.name;
    ASSERT_EQ(j["params"][p.name]["shape"].get<std::vector<int64_t>>(), p.spec.shape) << p.name;
    const auto data = j["params"][p.name]["data"].get<std::vector<float>>();
    std::copy(data.begin(), data.end(), h.store.values() + p.offset);
  }
  const auto x = j["x"].get<std::vector<float>>();
  const auto pos = j["positions"].get<std::vector<int32_t>>();
  // Exact mixers match to float rounding. An estimator (Performer) declares its approximation tolerance, and a
  // looser one for the query/key weight gradients, whose Monte Carlo variance is higher.
  const float tol = j.value("tolerance", 1e-5f), qk_tol = j.value("qk_grad_tolerance", tol);
  const auto y =
      h.Forward(x, pos, B, T, ForwardMode{true});  // the training forward, which Backward differentiates (MoE capacity)
  EXPECT_LT(RelativeDiff(y, j["y"].get<std::vector<float>>()), tol) << "output";
  // The auxiliary loss (MoE) is part of the differentiated loss <dy, y> + aux.
  EXPECT_NEAR(h.mixer->AuxLoss(), j.value("aux_loss", 0.0), 1e-5 * std::max(1.0, std::abs(j.value("aux_loss", 0.0))))
      << "aux loss";
  const auto dy = j["dy"].get<std::vector<float>>();
  std::vector<float> dx(x.size());
  h.store.ZeroGrad();
  h.mixer->Backward(*h.ctx, dy.data(), dx.data());
  EXPECT_LT(RelativeDiff(dx, j["dx"].get<std::vector<float>>()), tol) << "dx";
  for (const auto& p : h.store.params()) {
    std::vector<float> g(h.store.grads() + p.offset, h.store.grads() + p.offset + p.spec.Numel());
    EXPECT_LT(RelativeDiff(g, j["grads"][p.name].get<std::vector<float>>()),
              p.name == "wq" || p.name == "wk" ? qk_tol : tol)
        << "d" << p.name;
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, Parity, ::testing::ValuesIn(FixtureFiles()),
                         [](const auto& i) { return TestName(std::filesystem::path(i.param).stem().string()); });

// Every mixer that computes something (all but those whose registry entry declares a zero output) has a fixture
// named <mixer>_<case>, written by tests/make_fixtures.py.
TEST(ParityCoverage, EveryMixerHasAFixture) {
  const auto files = FixtureFiles();
  for (auto kind : {MixerKind::kSequence, MixerKind::kChannel})
    for (const auto& name : ListMixers(kind)) {
      if (FindMixer(name, kind).tests.zero_output) continue;
      bool found = false;
      for (const auto& f : files) found |= std::filesystem::path(f).stem().string().rfind(name + "_", 0) == 0;
      EXPECT_TRUE(found) << "no PyTorch parity fixture for mixer '" << name << "'";
    }
}

}  // namespace
}  // namespace mixlab::testing
