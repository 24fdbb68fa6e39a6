// tachyon::Batch<T>: a run of contiguous messages borrowed in place.
#pragma once

#include <cstddef>
#include <iterator>
#include <new>

#include "tachyon/options.hpp"

namespace tachyon {

/// A run of contiguous borrowed messages, valid until Subscriber::release().
template <Message T>
class Batch {
public:
    Batch() = default;
    Batch(const std::byte* first, std::size_t n, std::size_t stride) noexcept : first_(first), n_(n), stride_(stride) {}

    [[nodiscard]] std::size_t size() const noexcept { return n_; }
    [[nodiscard]] bool empty() const noexcept { return n_ == 0; }
    /// The i-th message in place (i < size()).
    [[nodiscard]] const T& operator[](std::size_t i) const noexcept {
        return *std::launder(reinterpret_cast<const T*>(first_ + i * stride_));
    }

    class iterator {
    public:
        using iterator_category = std::forward_iterator_tag;
        using value_type = T;
        using difference_type = std::ptrdiff_t;
        using pointer = const T*;
        using reference = const T&;
        iterator() = default;
        iterator(const Batch* b, std::size_t i) noexcept : b_(b), i_(i) {}
        reference operator*() const noexcept { return (*b_)[i_]; }
        pointer operator->() const noexcept { return &(*b_)[i_]; }
        iterator& operator++() noexcept { ++i_; return *this; }
        iterator operator++(int) noexcept { auto t = *this; ++i_; return t; }
        bool operator==(const iterator& o) const noexcept { return i_ == o.i_; }

    private:
        const Batch* b_ = nullptr;
        std::size_t i_ = 0;
    };
    [[nodiscard]] iterator begin() const noexcept { return {this, 0}; }
    [[nodiscard]] iterator end() const noexcept { return {this, n_}; }

private:
    const std::byte* first_ = nullptr;
    std::size_t n_ = 0;
    std::size_t stride_ = 0;
};

}  // namespace tachyon
