// Connection limits with eviction of the longest-idle connection (see conn_table.h).
#include "server/conn_table.h"

#include <sys/socket.h>

namespace ballast::server {

bool ConnTable::evict_one(const std::string& ip) {
  Conn* best = nullptr;
  for (auto& [id, c] : conns_) {
    if (c.evicted || !c.idle || (!ip.empty() && c.ip != ip)) continue;
    if (!best || c.idle_since < best->idle_since) best = &c;
  }
  if (!best) return false;
  best->evicted = true;
  ::shutdown(best->fd, SHUT_RDWR);  // its reader sees end-of-file and closes the socket
  if (--per_ip_[best->ip] == 0) per_ip_.erase(best->ip);
  --live_;
  ++evictions_;
  return true;
}

uint64_t ConnTable::admit(int fd, const std::string& ip) {
  std::lock_guard<std::mutex> lk(mu_);
  auto it = per_ip_.find(ip);
  if (it != per_ip_.end() && it->second >= max_per_ip_ && !evict_one(ip)) return 0;
  if (live_ >= max_total_ && !evict_one("")) return 0;
  uint64_t id = next_id_++;
  Conn& c = conns_[id];
  c.fd = fd;
  c.ip = ip;
  c.idle_since = Clock::now();
  ++per_ip_[ip];
  ++live_;
  return id;
}

bool ConnTable::evict_idle() {
  std::lock_guard<std::mutex> lk(mu_);
  return evict_one("");
}

void ConnTable::release(uint64_t id) {
  std::lock_guard<std::mutex> lk(mu_);
  auto it = conns_.find(id);
  if (it == conns_.end()) return;
  if (!it->second.evicted) {
    if (--per_ip_[it->second.ip] == 0) per_ip_.erase(it->second.ip);
    --live_;
  }
  conns_.erase(it);
}

void ConnTable::set_idle(uint64_t id) {
  std::lock_guard<std::mutex> lk(mu_);
  auto it = conns_.find(id);
  if (it == conns_.end() || it->second.idle) return;
  it->second.idle = true;
  it->second.idle_since = Clock::now();
}

bool ConnTable::set_busy(uint64_t id) {
  std::lock_guard<std::mutex> lk(mu_);
  auto it = conns_.find(id);
  if (it == conns_.end() || it->second.evicted) return false;
  it->second.idle = false;
  return true;
}

size_t ConnTable::size() const {
  std::lock_guard<std::mutex> lk(mu_);
  return live_;
}

size_t ConnTable::count(const std::string& ip) const {
  std::lock_guard<std::mutex> lk(mu_);
  auto it = per_ip_.find(ip);
  return it == per_ip_.end() ? 0 : it->second;
}

uint64_t ConnTable::evictions() const {
  std::lock_guard<std::mutex> lk(mu_);
  return evictions_;
}

}  // namespace ballast::server
