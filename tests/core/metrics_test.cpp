#include "core/metrics.hpp"

#include <catch2/catch.hpp>

#include <stdexcept>
#include <string>

using namespace filterd;

TEST_CASE("a series is created once and found again by name and labels", "[metrics]") {
    metrics_registry reg;
    counter& c = reg.get_counter("t_requests_total", "Requests.", {{"route", "pay"}});
    CHECK(&reg.get_counter("t_requests_total", "Requests.", {{"route", "pay"}}) == &c);
    CHECK(&reg.get_counter("t_requests_total", "Requests.", {{"route", "refund"}}) != &c);
    c.inc(3);
    CHECK(reg.counter_value("t_requests_total", {{"route", "pay"}}) == 3);
    CHECK(reg.counter_value("t_requests_total", {{"route", "refund"}}) == 0);
    CHECK(reg.counter_value("t_absent_total") == 0);

    gauge& g = reg.get_gauge("t_keys", "Keys.");
    CHECK(&reg.get_gauge("t_keys", "Keys.") == &g);
    histogram& h = reg.get_histogram("t_seconds", "Time.", {{"route", "pay"}});
    CHECK(&reg.get_histogram("t_seconds", "Time.", {{"route", "pay"}}) == &h);
}

TEST_CASE("one name cannot hold two metric types", "[metrics]") {
    metrics_registry reg;
    reg.get_counter("t_mixed", "Mixed.");
    CHECK_THROWS_AS(reg.get_gauge("t_mixed", "Mixed."), std::logic_error);
    CHECK_THROWS_AS(reg.get_histogram("t_mixed", "Mixed."), std::logic_error);
    reg.get_gauge("t_gauge", "Gauge.");
    CHECK_THROWS_AS(reg.get_counter("t_gauge", "Gauge."), std::logic_error);
}

TEST_CASE("every type renders with its TYPE line and values", "[metrics]") {
    metrics_registry reg;
    reg.get_counter("t_c_total", "C.", {{"k", "a\"b"}}).inc(2);
    reg.get_gauge("t_g", "G.").set(-4);
    reg.get_histogram("t_h_seconds", "H.").observe(3'000);
    const std::string out = reg.render_prometheus();
    CHECK(out.find("# TYPE t_c_total counter\nt_c_total{k=\"a\\\"b\"} 2\n") != std::string::npos);
    CHECK(out.find("# TYPE t_g gauge\nt_g -4\n") != std::string::npos);
    CHECK(out.find("# TYPE t_h_seconds histogram\n") != std::string::npos);
    CHECK(out.find("t_h_seconds_bucket{le=\"2.5e-06\"} 0\n") != std::string::npos);
    CHECK(out.find("t_h_seconds_bucket{le=\"5e-06\"} 1\n") != std::string::npos);
    CHECK(out.find("t_h_seconds_count 1\n") != std::string::npos);
}
