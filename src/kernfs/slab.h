// A size-class slab allocator for kernfs nodes: a max.toml tree has 1.25 million nodes, and
// malloc's per-chunk header and 16-byte rounding cost about 16 bytes each. Nodes are created
// with std::allocate_shared<T>(SlabAllocator<T>{}) so the control block and the node share one
// slot. Freed slots go to a free list and are reused; memory is never returned to the system.
// Thread-safe (a node's last reference may drop on a FUSE worker thread).
#pragma once

#include <cstddef>
#include <mutex>
#include <new>
#include <vector>

namespace apemu::kernfs::detail {

class Slab {
public:
  explicit Slab(std::size_t slot) : m_slot((slot + 7) & ~std::size_t{7}) {}
  void* allocate() {
    std::lock_guard lk(m_mutex);
    if (m_free) {
      void* p = m_free;
      m_free = *static_cast<void**>(p);
      return p;
    }
    if (m_left < m_slot) {
      m_blocks.push_back(static_cast<char*>(::operator new(kBlock)));
      m_next = m_blocks.back();
      m_left = kBlock;
    }
    void* p = m_next;
    m_next += m_slot;
    m_left -= m_slot;
    return p;
  }
  void deallocate(void* p) {
    std::lock_guard lk(m_mutex);
    *static_cast<void**>(p) = m_free;
    m_free = p;
  }

private:
  static constexpr std::size_t kBlock = 256 * 1024;
  std::size_t m_slot;
  std::mutex m_mutex;
  void* m_free = nullptr;
  char* m_next = nullptr;
  std::size_t m_left = 0;
  std::vector<char*> m_blocks; // kept for the life of the process
};

template <class T> struct SlabAllocator {
  using value_type = T;
  SlabAllocator() = default;
  template <class U> SlabAllocator(const SlabAllocator<U>&) {} // NOLINT
  static Slab& slab() {
    static Slab* s = new Slab(sizeof(T)); // never destroyed: nodes may outlive static teardown
    return *s;
  }
  T* allocate(std::size_t n) {
    if (n != 1) return static_cast<T*>(::operator new(n * sizeof(T)));
    return static_cast<T*>(slab().allocate());
  }
  void deallocate(T* p, std::size_t n) {
    if (n != 1) {
      ::operator delete(p);
      return;
    }
    slab().deallocate(p);
  }
  template <class U> bool operator==(const SlabAllocator<U>&) const { return true; }
};

} // namespace apemu::kernfs::detail
