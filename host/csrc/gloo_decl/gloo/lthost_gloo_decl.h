// What torch's c10d headers (ProcessGroupGloo.hpp, GlooDeviceFactory.hpp) need of Gloo's
// own headers, which the torch wheel does not ship. host/csrc/distributed.cpp makes a
// ProcessGroupGloo through libtorch's exported constructor and calls it only through
// c10d::Backend's virtual interface, so the Gloo types appear only behind pointers: their
// layout never matters here. Declared rather than taken from Debian's libgloo-dev (a 2022
// snapshot, older than the Gloo torch 2.13 is built with): a mismatched full header would
// compile and silently disagree; a declaration of an opaque type cannot.
#pragma once
#include <chrono>
#include <string>
#include <vector>

namespace gloo {

// Used by ProcessGroupGloo::setTimeout, an inline virtual whose vtable lives in libtorch.
class Context {
 public:
  void setTimeout(std::chrono::milliseconds timeout);
};

namespace rendezvous {
// The base of ProcessGroupGloo::GlooStore (the store adapter torch defines inline and this
// shim never instantiates).
class Store {
 public:
  virtual ~Store() = default;
  virtual void set(const std::string& key, const std::vector<char>& data) = 0;
  virtual std::vector<char> get(const std::string& key) = 0;
  virtual void wait(const std::vector<std::string>& keys) = 0;
  virtual void wait(const std::vector<std::string>& keys, const std::chrono::milliseconds& timeout) = 0;
};
}  // namespace rendezvous

namespace transport {
class Device;
class UnboundBuffer;
}  // namespace transport

}  // namespace gloo
