# frozen_string_literal: true

# A/B harness for the bench/*.rb comparisons of msgpack-rs against the C msgpack gem.
#
# Both libraries define `MessagePack`, so they never share a process. The parent
# (which never loads msgpack itself) starts, for every round, one server child per
# implementation,
#
#   msgpack-rs:  ruby -I SNAPSHOT/lib  bench/NAME.rb --serve
#   C gem:       ruby                  bench/NAME.rb --serve
#
# (SNAPSHOT/lib: a private copy of lib/ taken when the parent starts, so that every
# round times the same build and a rebuild of lib/msgpack/msgpack_rs.so meanwhile
# cannot crash or change the children.)
#
# and then asks them to time the cases one at a time, alternating between the two:
# case 1 on A then B, case 2 on B then A, case 3 on A then B, ... (the order also flips
# every round). Only one child runs at a time, and the two timings of a case are
# seconds apart, so a burst of load from other processes on this shared machine
# rarely hits one side only. Fresh children every round also vary heap layout.
#
# Each child builds the payloads and checks them once before timing anything:
# unpack(pack(x)) must equal x strictly (StrictEquality.same? from
# spec/support/strict_equality.rb without the frozen check: class, string encoding and
# bytes, Float bits, Hash order); the parent then compares the digest of the packed bytes
# and a fingerprint of the unpacked objects (including frozenness) across implementations.
#
# A bench file looks like:
#
#   require_relative "support/ab"
#   AB.main(__FILE__, title: "...") do |s|     # the block runs in children only
#     obj = {...}
#     s.section("pack") do
#       s.check("name", obj)                    # round trip + digests, returns packed bytes
#       s.bench("name", "MessagePack.pack(obj)", obj: obj)
#     end
#   end
#
# `s.bench(label, code, **vars)` compiles `code` into a `while` loop (no block call
# per iteration) with `vars` as its locals; `s.bench(label) { |n| ... }` takes a block
# that must run the operation n times itself. `bytes:` (per operation) prints MB/s.
#
# Timing of one case in one child: a calibration pass (first round only) picks n so that
# a batch of n operations takes BENCH_TIME / BENCH_SAMPLES seconds; batches run for
# BENCH_WARMUP seconds (discarded), then for BENCH_TIME seconds (at least 3 batches);
# the child reports the median batch rate. Across rounds the parent takes the best
# (BENCH_STAT=best, the default: other processes only ever slow a run down) or the
# median (BENCH_STAT=median). The "rounds" column is the range of the per-round ratios.
#
# Environment:
#   BENCH_ROUNDS   rounds, a fresh pair of children each (4)
#   BENCH_TIME     measured seconds per case per child per round (0.5)
#   BENCH_WARMUP   warm-up seconds per case per child per round (0.15)
#   BENCH_SAMPLES  batches per BENCH_TIME (10)
#   BENCH_STAT     best | median across rounds (best)
#   BENCH_FILTER   regexp; only cases whose "section: label" matches are timed
#                  (all checks still run)
#   BENCH_IMPLS    ours,c (default) | ours | c
#   BENCH_JSON_DIR write the raw results to DIR/NAME.json
#   BENCH_C_LIB    a lib/ directory holding a C msgpack gem built for this Ruby (the C
#                  children load it with -I; default: the installed C gem)
#   BENCH_GC=1     GC columns (GC runs and GC milliseconds per 1,000 operations)
#
# Other entry points:
#   ruby [-I lib] bench/NAME.rb --list           check names and case labels
#   ruby [-I lib] bench/NAME.rb --dump CHECK     the packed bytes of one check, raw on stdout
#
# Exit status of the parent: 0, or 1 if a child failed or crashed, a check failed, or
# the implementations disagreed on packed bytes or unpacked objects.
#
# The harness lives in bench/support/ab/, one file per role; this file loads them all:
#   ab/main.rb     constants, AB.main (which role this process plays), BENCH_* settings
#   ab/timing.rb   AB.now / median / geomean; AB::Timing, a child's calibrated batch timing
#   ab/objects.rb  AB.fingerprint (round trips are compared with StrictEquality)
#   ab/child.rb    AB::Child: loads one implementation, the bench DSL, --serve/--dump/--list
#   ab/server.rb   AB::Server (the parent's handle on one child), AB::ChildDied
#   ab/report.rb   AB::Report: header, ratio tables, GC columns, cross checks, JSON output
#   ab/parent.rb   AB::Parent: snapshot of lib/, the rounds, collecting the results

require_relative "ab/main"
require_relative "ab/timing"
require_relative "ab/objects"
require_relative "ab/child"
require_relative "ab/server"
require_relative "ab/report"
require_relative "ab/parent"
