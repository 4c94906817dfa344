// The budgeted CPU allocator: libtorch's CPU allocator wrapped so that every allocation
// made while a plugin's call runs on this thread is charged to that plugin's budget, by
// storage (a view costs nothing more; a storage is charged until its last user frees it),
// and refused — a c10::Error, which tch returns as an op error — when it would go over.
//
// Every block this allocator hands out carries a 64-byte header in front of the data
// (64 keeps libtorch's alignment): the budget it was charged to and its size. So the data
// pointer is its own context and one deleter frees every block: `raw_allocate` and
// `raw_deallocate` (oneDNN's scratch memory) keep working, and the charge is returned
// whichever thread frees the block, whenever.
#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <c10/util/Exception.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <random>
#include <string>

namespace {

struct Budget {
  std::atomic<int64_t> used{0};
  std::atomic<int64_t> peak{0};
  std::atomic<int64_t> limit{0};
  // The owner's reference plus one per live block charged to it.
  std::atomic<int64_t> refs{1};
};

void unref(Budget* b) {
  if (b->refs.fetch_sub(1) == 1) delete b;
}

struct Header {
  uint64_t magic;
  Budget* budget;
  int64_t bytes;
};
constexpr uint64_t kMagic = 0x6c74686f73746231ULL;  // "lthostb1"
// The magic a block at `data` carries: keyed by its address and a per-process random key,
// so that bytes in front of a block the allocator did not hand out (which a plugin's own
// tensor data could fill) are not taken for a header.
uint64_t magic_for(const void* data) {
  static const uint64_t key = [] {
    std::random_device rd;
    return (static_cast<uint64_t>(rd()) << 32) ^ rd() ^ kMagic;
  }();
  return key ^ reinterpret_cast<uintptr_t>(data);
}
constexpr size_t kHeader = 64;
static_assert(sizeof(Header) <= kHeader, "header fits");

thread_local Budget* current = nullptr;
c10::Allocator* inner = nullptr;

void release(void* data) {
  if (data == nullptr) return;
  char* base = static_cast<char*>(data) - kHeader;
  auto* h = reinterpret_cast<Header*>(base);
  if (h->magic != magic_for(data)) {
    // Not one of ours: a raw block the default allocator handed out before this one was
    // installed (lthost installs it first thing, so this should not happen), freed through
    // the allocator in force now.
    inner->raw_deallocate(data);
    return;
  }
  h->magic = 0;
  if (h->budget != nullptr) {
    h->budget->used.fetch_sub(h->bytes);
    unref(h->budget);
  }
  inner->raw_deallocate(base);
}

std::string mib(int64_t b) { return std::to_string(b >> 20) + " MiB"; }

struct BudgetedAllocator final : c10::Allocator {
  c10::DataPtr allocate(size_t n) override {
    Budget* b = current;
    if (n == 0) return c10::DataPtr(nullptr, nullptr, &release, c10::Device(c10::DeviceType::CPU));
    TORCH_CHECK_WITH(OutOfMemoryError, n <= static_cast<size_t>(INT64_MAX) - kHeader, "cannot allocate ", n, " bytes");
    auto bytes = static_cast<int64_t>(n);
    if (b != nullptr) {
      int64_t limit = b->limit.load();
      // Checked before adding, so that a huge request cannot overflow the count.
      if (bytes > limit) {
        TORCH_CHECK_WITH(OutOfMemoryError, false, "allocating ", mib(bytes), " would bring the plugin's tensor memory to more than ", mib(bytes),
                         ", over its budget of ", mib(limit), " (plugin.tensor_memory_limit_mb)");
      }
      int64_t now = b->used.fetch_add(bytes) + bytes;
      if (now > limit) {
        b->used.fetch_sub(bytes);
        TORCH_CHECK_WITH(OutOfMemoryError, false, "allocating ", mib(bytes), " would bring the plugin's tensor memory to ", mib(now),
                         ", over its budget of ", mib(limit), " (plugin.tensor_memory_limit_mb)");
      }
      int64_t seen = b->peak.load();
      while (now > seen && !b->peak.compare_exchange_weak(seen, now)) {
      }
      b->refs.fetch_add(1);
    }
    void* base = nullptr;
    try {
      base = inner->raw_allocate(n + kHeader);  // n <= limit here, or b is null
    } catch (...) {
      if (b != nullptr) {
        b->used.fetch_sub(bytes);
        unref(b);
      }
      throw;
    }
    void* data = static_cast<char*>(base) + kHeader;
    auto* h = static_cast<Header*>(base);
    h->magic = magic_for(data);
    h->budget = b;
    h->bytes = bytes;
    return c10::DataPtr(data, data, &release, c10::Device(c10::DeviceType::CPU));
  }

  c10::DeleterFnPtr raw_deleter() const override { return &release; }

  void copy_data(void* dest, const void* src, std::size_t count) const override { default_copy_data(dest, src, count); }
};

BudgetedAllocator allocator;
std::once_flag installed;

}  // namespace

extern "C" {

// Makes the budgeted allocator libtorch's CPU allocator (once per process). Blocks made
// before keep their own allocator and deleter.
void lthost_budget_install() {
  // Called first thing in main (and again, harmlessly, wherever a budget is made).
  std::call_once(installed, [] {
    inner = c10::GetCPUAllocator();
    c10::SetAllocator(c10::DeviceType::CPU, &allocator, /*priority=*/255);
  });
}

void* lthost_budget_new(int64_t limit) {
  auto* b = new Budget();
  b->limit.store(limit);
  return b;
}

// The owner lets go; the budget lives on until its last block is freed.
void lthost_budget_free(void* b) { unref(static_cast<Budget*>(b)); }

int64_t lthost_budget_used(void* b) { return static_cast<Budget*>(b)->used.load(); }

int64_t lthost_budget_peak(void* b) { return static_cast<Budget*>(b)->peak.load(); }

int64_t lthost_budget_limit(void* b) { return static_cast<Budget*>(b)->limit.load(); }

// Charges `n` bytes that are not a libtorch block (a host-side read buffer) to `b`; 0 when
// that would pass its limit (nothing charged). Given back with lthost_budget_unreserve.
int lthost_budget_reserve(void* b, int64_t n) {
  auto* budget = static_cast<Budget*>(b);
  int64_t limit = budget->limit.load();
  if (n > limit) return 0;
  int64_t now = budget->used.fetch_add(n) + n;
  if (now > limit) {
    budget->used.fetch_sub(n);
    return 0;
  }
  int64_t seen = budget->peak.load();
  while (now > seen && !budget->peak.compare_exchange_weak(seen, now)) {
  }
  return 1;
}

void lthost_budget_unreserve(void* b, int64_t n) { static_cast<Budget*>(b)->used.fetch_sub(n); }

// Charges this thread's allocations to `b` (null: to nobody) until the matching exit;
// returns the budget charged before, for lthost_budget_exit.
void* lthost_budget_enter(void* b) {
  Budget* prev = current;
  current = static_cast<Budget*>(b);
  return prev;
}

void lthost_budget_exit(void* prev) { current = static_cast<Budget*>(prev); }

// Whether the budgeted allocator is libtorch's CPU allocator now.
int lthost_budget_active() { return c10::GetCPUAllocator() == &allocator ? 1 : 0; }
}
