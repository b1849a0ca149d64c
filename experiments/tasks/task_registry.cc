// The built-in tasks, one line each.
#include "experiments/tasks/task.h"
#include "mixers/ops/usage_error.h"

namespace mixlab {

TaskInfo MqarTaskInfo();
TaskInfo InductionTaskInfo();
TaskInfo CopyTaskInfo();
TaskInfo SelectiveCopyTaskInfo();
TaskInfo InContextRecallTaskInfo();
TaskInfo NoisyRecallTaskInfo();
TaskInfo FuzzyRecallTaskInfo();
TaskInfo MemorizationTaskInfo();
TaskInfo CompressionTaskInfo();
TaskInfo ListOpsTaskInfo();
TaskInfo PasskeyTaskInfo();
TaskInfo CharLmTaskInfo();

namespace {
const std::vector<TaskInfo>& Registry() {
  static const std::vector<TaskInfo> tasks = {
      MqarTaskInfo(),          InductionTaskInfo(),       CopyTaskInfo(),
      SelectiveCopyTaskInfo(), InContextRecallTaskInfo(), NoisyRecallTaskInfo(),
      FuzzyRecallTaskInfo(),   CompressionTaskInfo(),     MemorizationTaskInfo(),
      ListOpsTaskInfo(),       PasskeyTaskInfo(),         CharLmTaskInfo()};
  return tasks;
}
}  // namespace

std::vector<std::string> ListTasks() {
  std::vector<std::string> out;
  for (const auto& t : Registry()) out.push_back(t.name);
  return out;
}

const TaskInfo& FindTask(const std::string& name) {
  for (const auto& t : Registry())
    if (t.name == name) return t;
  throw UsageError("unknown task '" + name + "'; known: " + JoinList(ListTasks(), ", "));
}

std::unique_ptr<Task> MakeTask(const std::string& name, const std::map<std::string, std::string>& option_values) {
  const TaskInfo& info = FindTask(name);
  auto options = info.make_options();
  SetOptions(*options, option_values, "task '" + name + "'");
  return info.make(*options);
}

}  // namespace mixlab
