#pragma once
// Test helper: builds a real FlatBuffers FilterRequest (through the same encoder the tools use) and
// hands out a request_view over it, so filter tests exercise the verified wire representation.

#include "filters/common/filter.hpp"
#include "protocol/framing.hpp"

#include <stdexcept>
#include <vector>

namespace filterd::testing {

struct built_request {
    std::vector<std::uint8_t> frame;  ///< length prefix + buffer
    const wire::FilterRequest* req = nullptr;
    request_view view() const { return request_view(*req); }
};

inline built_request make_request(const proto::request_spec& spec) {
    built_request out;
    out.frame = proto::encode_request(spec);
    proto::frame_status st{};
    const wire::Frame* f = proto::verify_frame(std::span<const std::uint8_t>(out.frame).subspan(proto::length_bytes),
                                               st);
    if (f == nullptr || f->body_as_FilterRequest() == nullptr)
        throw std::runtime_error("test request failed verification");
    out.req = f->body_as_FilterRequest();
    return out;
}

}  // namespace filterd::testing
