// The registry's refusals: unknown and duplicate names, unknown options, unsupported positional encodings and
// impossible shapes, each with a message naming what is allowed.
#include <gtest/gtest.h>

#include "tests/test_util.h"

namespace mixlab::testing {
namespace {

TEST(Registry, UnknownAndDuplicateNamesThrow) {
  EXPECT_THROW(FindMixer("no-such-mixer", MixerKind::kSequence), UsageError);
  try {
    FindMixer("no-such-mixer", MixerKind::kSequence);
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("softmax"), std::string::npos) << "error should list known mixers";
  }
  EXPECT_THROW(RegisterMixer(FindMixer("softmax", MixerKind::kSequence)), std::logic_error);
}

TEST(Registry, RefusesUnsupportedPositionalEncoding) {
  EXPECT_THROW(MakeMixer("mlp", MixerKind::kChannel, MixerDims{16, 1, 0, "none"}, {{"bogus", "1"}}), UsageError);
  EXPECT_THROW(MakeMixer("softmax", MixerKind::kSequence, MixerDims{16, 1, 0, "learned"}, {}), UsageError);
  EXPECT_THROW(MakeMixer("softmax", MixerKind::kSequence, MixerDims{64, 1, 0, "none"}, {{"n-heads", "3"}}), UsageError);
}

}  // namespace
}  // namespace mixlab::testing
