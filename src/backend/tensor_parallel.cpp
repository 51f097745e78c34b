// Tensor parallel over ranks (see tensor_parallel.hpp): the host all-reduce,
// the observer that renumbers a rank's heads, and the backend that runs the
// ranks side by side.
#include "backend/tensor_parallel.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <exception>
#include <optional>
#include <thread>

#include "backend/observer_recording.hpp"
#include "core/error.hpp"

namespace ropescope::backend {

// ---- HostAllReduce ----------------------------------------------------------

struct HostAllReduce::RankView : BranchReducer {
  HostAllReduce& group;
  int rank;
  RankView(HostAllReduce& g, int r) : group(g), rank(r) {}
  void all_reduce(int sequence, int layer, Branch branch, std::span<float> values) override {
    group.all_reduce(rank, {sequence, layer, static_cast<int>(branch)}, values);
  }
};

HostAllReduce::HostAllReduce(int ranks) : ranks_(ranks) {
  for (int r = 0; r < ranks; ++r) views_.push_back(std::make_unique<RankView>(*this, r));
}

HostAllReduce::~HostAllReduce() = default;

BranchReducer& HostAllReduce::rank(int r) { return *views_.at(r); }

void HostAllReduce::begin() {
  std::lock_guard lock(mutex_);
  aborted_ = false;
  rounds_.clear();
}

void HostAllReduce::abort() {
  std::lock_guard lock(mutex_);
  aborted_ = true;
  changed_.notify_all();
}

void HostAllReduce::all_reduce(int rank, const Key& key, std::span<float> values) {
  std::unique_lock lock(mutex_);
  auto stopped = [&] {
    return Stopped(fmt::format("tensor parallel: rank {} stopped waiting for the all-reduce of sequence {}, layer {}: "
                               "another rank failed",
                               rank, std::get<0>(key), std::get<1>(key)));
  };
  if (aborted_) throw stopped();
  Round& round = rounds_[key];
  if (round.parts.empty()) round.parts.resize(ranks_);
  const bool mismatched = std::any_of(round.parts.begin(), round.parts.end(),
                                      [&](const auto& p) { return !p.empty() && p.size() != values.size(); });
  if (!round.parts[rank].empty() || mismatched)
    throw Error(fmt::format("tensor parallel: rank {} joined the all-reduce of sequence {}, layer {} twice or with "
                            "{} values where another rank has a different count",
                            rank, std::get<0>(key), std::get<1>(key), values.size()));
  round.parts[rank] = values;
  if (++round.arrived == ranks_) {
    // The sum in rank order (the same order, hence the same bits, on every rank), written back to each.
    std::vector<float> sum(round.parts[0].begin(), round.parts[0].end());
    for (int r = 1; r < ranks_; ++r)
      for (std::size_t i = 0; i < sum.size(); ++i) sum[i] += round.parts[r][i];
    for (auto& part : round.parts) std::copy(sum.begin(), sum.end(), part.begin());
    round.done = true;
    changed_.notify_all();
  } else {
    changed_.wait(lock, [&] { return round.done || aborted_; });
    if (!round.done) throw stopped();
  }
  if (++round.left == ranks_) rounds_.erase(key);
}

// ---- the observer of one rank ------------------------------------------------

namespace {

// Hands a rank's observer calls on with the model's head numbers (and, over
// processes, to the recording the other processes receive).
class ShardObserver : public AttentionObserver {
 public:
  ShardObserver(AttentionObserver& inner, ObserverRecording* shared, const model::TensorParallelShard& shard)
      : inner_(inner), shared_(shared), shard_(shard) {}
  void on_block(const AttentionBlock& block) override {
    AttentionBlock b = block;
    b.head = global(block.head);
    inner_.on_block(b);
    if (shared_) shared_->on_block(b);
  }
  void on_distance_sums(const DistanceSums& sums) override {
    DistanceSums s = sums;
    s.head = global(sums.head);
    inner_.on_distance_sums(s);
    if (shared_) shared_->on_distance_sums(s);
  }
  bool observes(int layer, int attention_head) const override {
    return inner_.observes(layer, attention_head + shard_.first_attention_head);
  }
  bool observes_layer(int layer) const override { return inner_.observes_layer(layer); }
  bool wants_virtual_imaginary() const override { return inner_.wants_virtual_imaginary(); }
  const DistanceSumsRequest* distance_sums_request() const override { return inner_.distance_sums_request(); }

 private:
  model::AttentionHead global(model::AttentionHead h) const {
    h.index += shard_.first_attention_head;
    h.query_head += shard_.first_query_head;
    h.kv_head += shard_.first_kv_head;
    return h;
  }
  AttentionObserver& inner_;
  ObserverRecording* shared_;
  const model::TensorParallelShard& shard_;
};

// The part of an ablation list a rank holds, in its own head numbers.
HeadAblation ablation_of(const HeadAblation& all, const model::TensorParallelShard& shard) {
  HeadAblation mine = all;
  mine.heads.clear();
  for (const auto& [layer, head] : all.heads)
    if (head >= shard.first_attention_head && head < shard.first_attention_head + shard.attention_heads)
      mine.heads.emplace_back(layer, head - shard.first_attention_head);
  return mine;
}

}  // namespace

// ---- TensorParallelBackend -----------------------------------------------------

TensorParallelBackend::TensorParallelBackend(std::shared_ptr<const model::Model> model,
                                             std::vector<std::unique_ptr<Backend>> ranks,
                                             std::unique_ptr<ReduceGroup> group)
    : model_(std::move(model)), ranks_(std::move(ranks)), group_(std::move(group)) {
  const int n = static_cast<int>(ranks_.size());
  if (!group_) group_ = std::make_unique<HostAllReduce>(n);
  if (group_->ranks() != n)
    throw ArgumentError("tensor-parallel", fmt::format("{} ranks and a reduce group of {}", n, group_->ranks()));
  const int all = group_->world().ranks, first = group_->first_rank();
  if (all < 2) throw ArgumentError("tensor-parallel", fmt::format("tensor parallel needs at least two ranks, got {}", all));
  for (int r = 0; r < n; ++r) {
    shards_.push_back(model::plan_tensor_parallel(*model_, first + r, all));
    const auto& m = ranks_[r]->model();
    const auto& s = shards_.back();
    if (m.layout.attention_heads != s.attention_heads || m.layout.kv_heads != s.kv_heads ||
        m.config.intermediate_size != s.mlp_rows || m.config.num_hidden_layers != model_->config.num_hidden_layers)
      throw ArgumentError("tensor-parallel",
                          fmt::format("rank {} ({}) holds {} attention heads, {} KV heads and {} MLP rows; shard {} of "
                                      "{} is {}, {} and {}",
                                      first + r, ranks_[r]->name(), m.layout.attention_heads, m.layout.kv_heads,
                                      m.config.intermediate_size, first + r, all, s.attention_heads, s.kv_heads,
                                      s.mlp_rows));
  }
  adopt_notices(ranks_);
}

ForwardOptions TensorParallelBackend::rank_options(std::size_t r, const ForwardOptions& options,
                                                   AttentionObserver* observer) const {
  ForwardOptions mine = options;
  mine.branch_reducer = &group_->rank(static_cast<int>(r));
  mine.ablation = ablation_of(options.ablation, shards_[r]);
  if (mine.noise) mine.noise->first_head += shards_[r].first_attention_head;  // the one-backend values, head by head
  mine.observer = observer;
  if (r > 0) {  // the residual stream is the same on every rank: a process's first rank alone computes the head
    mine.whole_forward = !observer_only(options);  // every layer the first rank runs, branch for branch
    mine.loss = false;
    mine.keep_logits = mine.keep_hidden = false;
  }
  return mine;
}

std::string TensorParallelBackend::name() const {
  const World w = group_->world();
  if (w.spans_processes())
    return fmt::format("tensor parallel over {} ranks in {} processes; process {} holds ranks {}..{}: {}", w.ranks,
                       w.processes, w.process, group_->first_rank(), group_->first_rank() + ranks_.size() - 1,
                       joined_names(ranks_));
  return fmt::format("tensor parallel over {} ranks: {}", ranks_.size(), joined_names(ranks_));
}

std::string TensorParallelBackend::precision() const {
  return ranks_.front()->precision() +
         fmt::format("; tensor parallel over {} ranks: attention heads and MLP rows split, each branch's partial "
                     "outputs summed ({}) before any post norm and the residual add",
                     group_->world().ranks, group_->summation());
}

std::vector<ForwardResult> TensorParallelBackend::forward(const std::vector<std::vector<std::int32_t>>& sequences,
                                                          const ForwardOptions& options) {
  check_forward_request(*model_, sequences, options);
  if (options.branch_reducer) throw ArgumentError("tensor parallel inside tensor parallel");
  const std::size_t n = ranks_.size();
  const auto start = std::chrono::steady_clock::now();
  group_->begin();
  // Over processes, this process's observer calls are also kept for the others.
  const World world = group_->world();
  std::optional<ObserverRecording> shared;
  if (options.observer && world.spans_processes()) shared.emplace(*options.observer);
  std::vector<std::unique_ptr<ShardObserver>> observers;
  std::vector<std::vector<ForwardResult>> results(n);
  std::vector<std::exception_ptr> errors(n);
  std::vector<std::thread> threads;
  for (std::size_t r = 0; r < n; ++r) {
    if (options.observer)
      observers.push_back(std::make_unique<ShardObserver>(*options.observer, shared ? &*shared : nullptr, shards_[r]));
    threads.emplace_back([&, r, mine = rank_options(r, options, options.observer ? observers.back().get() : nullptr)] {
      try {
        results[r] = ranks_[r]->forward(sequences, mine);
      } catch (...) {
        errors[r] = std::current_exception();
        group_->abort();
      }
    });
  }
  for (auto& t : threads) t.join();
  forward_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  // The failure that stopped the group; the ranks it released threw Stopped after it.
  std::exception_ptr released;
  for (const auto& e : errors) {
    if (!e) continue;
    try {
      std::rethrow_exception(e);
    } catch (const ReduceGroup::Stopped&) {
      if (!released) released = e;
    } catch (...) {
      throw;
    }
  }
  if (released) std::rethrow_exception(released);
  if (shared) {
    // The other processes' calls for their heads, in process order, after this process's own.
    auto payloads = group_->gather_processes(shared->to_bytes());
    ObserverRecording others(*options.observer);
    for (int p = 0; p < world.processes; ++p)
      if (p != world.process) others.from_bytes(payloads.at(p), fmt::format("tensor-parallel process {}", p));
    others.replay(*options.observer);
  }
  return std::move(results.front());
}

std::uint64_t TensorParallelBackend::forward_bytes(long T, const ForwardOptions& options) const {
  std::uint64_t most = 0;  // per rank: each holds its shard's activations
  for (std::size_t r = 0; r < ranks_.size(); ++r)
    most = std::max(most, ranks_[r]->forward_bytes(T, rank_options(r, options, options.observer)));
  return most;
}

void TensorParallelBackend::check_memory(long T, const ForwardOptions& options) const {
  for (std::size_t r = 0; r < ranks_.size(); ++r) ranks_[r]->check_memory(T, rank_options(r, options, options.observer));
}

std::vector<std::string> TensorParallelBackend::kernel_choices() const { return ranks_.front()->kernel_choices(); }

nlohmann::json TensorParallelBackend::statistics() const {
  const World w = group_->world();
  nlohmann::json s = {{"ranks", w.ranks}, {"forward_seconds", forward_seconds_}};
  if (w.spans_processes()) {
    s["processes"] = w.processes;
    s["process"] = w.process;
    s["first_rank"] = group_->first_rank();
  }
  if (const auto seconds = group_->reduce_seconds(); !seconds.empty()) s["all_reduce_seconds"] = seconds;
  return s;
}

}  // namespace ropescope::backend
