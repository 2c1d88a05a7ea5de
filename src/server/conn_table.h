// Bookkeeping of open HTTP connections: how many there are in all and per peer address,
// which ones are idle (waiting for a request's first byte), and eviction of the
// longest-idle one when a newcomer would exceed a limit. Busy connections are never
// evicted; an idle one is closed with shutdown(), which wakes its reader.
#pragma once
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

namespace ballast::server {

class ConnTable {
 public:
  using Clock = std::chrono::steady_clock;
  ConnTable(size_t max_total, size_t max_per_ip) : max_total_(max_total), max_per_ip_(max_per_ip) {}

  // Registers a new connection from `ip`, evicting the longest-idle connection (of the
  // same address when that address is at its cap) if a limit would be exceeded.
  // Returns its id, or 0 when every connection in the way is busy.
  uint64_t admit(int fd, const std::string& ip);
  void release(uint64_t id);
  // A connection waits for the first byte of its next request (evictable) ...
  void set_idle(uint64_t id);
  // ... or has started one. False when it was evicted meanwhile (the caller closes).
  bool set_busy(uint64_t id);

  // Closes the longest-idle connection (out of descriptors); false if none is idle.
  bool evict_idle();

  size_t size() const;
  size_t count(const std::string& ip) const;
  uint64_t evictions() const;

 private:
  struct Conn {
    int fd = -1;
    std::string ip;
    bool idle = true;
    bool evicted = false;
    Clock::time_point idle_since;
  };
  // Closes the longest-idle live connection (of `ip` when not empty); false if none.
  bool evict_one(const std::string& ip);

  const size_t max_total_, max_per_ip_;
  mutable std::mutex mu_;
  std::map<uint64_t, Conn> conns_;
  std::map<std::string, size_t> per_ip_;  // live (not evicted) connections per address
  size_t live_ = 0;
  uint64_t next_id_ = 1;
  uint64_t evictions_ = 0;
};

}  // namespace ballast::server
