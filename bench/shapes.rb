# frozen_string_literal: true

# Pack/unpack throughput of msgpack-rs against the C msgpack gem, on a few payload shapes.
#
#   ruby bench/shapes.rb            run the comparison (what script/bench does)
#   ruby -I lib bench/shapes.rb --child    one measurement process with msgpack-rs
#   ruby bench/shapes.rb --child           one measurement process with the C gem
#
# The comparison runs each implementation in its own process, alternating
# ours, C, ours, C, ... for BENCH_ROUNDS rounds, so that machine noise hits both
# alike. Each child prints one JSON object; the parent prints the median ops/s
# per shape, the ratio ours/C, and the geometric mean of the ratios.
#
# Environment: BENCH_ROUNDS (3), BENCH_TIME (1.0 s per benchmark), BENCH_WARMUP (0.3 s),
# BENCH_ONLY (regexp on benchmark names), BENCH_JSON (write all raw results to this path).

require "digest"
require "json"
require "rbconfig"

module Shapes
  REPO_ROOT = File.expand_path("..", __dir__)
  REPO_LIB = File.join(REPO_ROOT, "lib")

  module_function

  def log_record(i)
    {
      "ts" => 1_714_825_696_789 + (i * 137),
      "host" => "web-#{(i % 3) + 1}.example.internal",
      "method" => i.even? ? "GET" : "POST",
      "path" => "/api/v2/orders/#{48_213 + i}/items",
      "status" => [200, 200, 201, 304, 404][i % 5],
      "bytes" => 1_834 + (i * 71),
      "duration_ms" => 12.75 + (i % 100),
      "remote_ip" => "203.0.113.#{i % 250}",
      "user_agent" => "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
      "request_id" => format("%08x-4b1d-4c3e-9f0a-%012x", 0x5eed0000 + i, 0xc0ffee + i),
      "tags" => ["edge", i.even? ? "cache-miss" : "cache-hit"],
    }
  end

  # name => object. Built the same way in every process.
  def payloads
    {
      "map1_str150" => { "message" => ("GET /api/v2/orders/48213/items 200 " * 5).byteslice(0, 150) },
      "log_record" => log_record(0),
      "records_1000" => Array.new(1000) { |i| log_record(i) },
      "bin_1mib" => { "data" => Random.new(42).bytes(1 << 20) },
    }
  end

  # ---- child: measure one implementation ------------------------------------------

  def child
    ours = $LOAD_PATH.any? { |p| File.expand_path(p) == REPO_LIB }
    unless ours
      begin
        gem "msgpack" # the C gem, even if a msgpack-rs gem is installed too
      rescue Gem::LoadError
        nil
      end
    end
    require "msgpack"
    require "benchmark/ips"

    loaded_rs = !$LOADED_FEATURES.grep(/msgpack_rs\.(so|bundle)\z/).empty?
    if ours && !$LOADED_FEATURES.any? { |f| f.start_with?(REPO_LIB + "/") && f =~ /msgpack_rs\.(so|bundle)\z/ }
      abort "bench child: -I lib given but msgpack-rs was not loaded from #{REPO_LIB} (script/build first)"
    end
    abort "bench child: the C gem run loaded msgpack-rs" if !ours && loaded_rs

    time = Float(ENV.fetch("BENCH_TIME", "1.0"))
    warmup = Float(ENV.fetch("BENCH_WARMUP", "0.3"))
    only = ENV["BENCH_ONLY"] && Regexp.new(ENV["BENCH_ONLY"])

    digests = {}
    report = Benchmark.ips(quiet: true) do |x|
      x.config(time: time, warmup: warmup)
      payloads.each do |name, obj|
        packed = MessagePack.pack(obj)
        digests[name] = [packed.bytesize, Digest::SHA256.hexdigest(packed)[0, 16]]
        unless MessagePack.unpack(packed) == obj
          abort "bench child: #{name} does not round-trip"
        end

        unless only && !only.match?("pack #{name}")
          x.report("pack #{name}") do |times|
            i = 0
            while i < times
              MessagePack.pack(obj)
              i += 1
            end
          end
        end
        next if only && !only.match?("unpack #{name}")

        x.report("unpack #{name}") do |times|
          i = 0
          while i < times
            MessagePack.unpack(packed)
            i += 1
          end
        end
      end
    end

    puts JSON.generate(
      "impl" => ours ? "msgpack-rs" : "C",
      "version" => MessagePack::VERSION,
      "loaded" => $LOADED_FEATURES.grep(%r{/msgpack(_rs)?\.(rb|so|bundle)\z}),
      "digests" => digests,
      "ips" => report.entries.to_h { |e| [e.label, e.ips] },
    )
  end

  # ---- parent: alternate processes, then summarise --------------------------------

  def run_child(ours)
    args = [RbConfig.ruby]
    args += ["-I", REPO_LIB] if ours
    args += [File.expand_path(__FILE__), "--child"]
    env = { "RUBYLIB" => nil }
    out = IO.popen(env, args, &:read)
    raise "benchmark child failed (#{args.join(" ")}): exit #{$?.exitstatus}" unless $?.success?

    JSON.parse(out.lines.last)
  end

  def median(values)
    sorted = values.sort
    mid = sorted.size / 2
    sorted.size.odd? ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2.0
  end

  def fmt_ips(ips)
    if ips >= 1_000_000 then format("%.2f M", ips / 1e6)
    elsif ips >= 1_000 then format("%.1f k", ips / 1e3)
    else format("%.1f", ips)
    end
  end

  def parent
    rounds = Integer(ENV.fetch("BENCH_ROUNDS", "3"))
    runs = { "msgpack-rs" => [], "C" => [] }
    rounds.times do |r|
      [true, false].each do |ours|
        label = ours ? "msgpack-rs" : "C"
        $stderr.print "round #{r + 1}/#{rounds}: #{label}... "
        result = run_child(ours)
        $stderr.puts "done (#{result["version"]})"
        runs[label] << result
      end
    end

    ours_digests = runs["msgpack-rs"].first["digests"]
    c_digests = runs["C"].first["digests"]
    ours_digests.each do |name, digest|
      next if c_digests[name] == digest

      puts "note: #{name} packs to different bytes (ours #{digest[0]} B, C #{c_digests[name]&.first} B)"
    end

    puts
    puts "msgpack-rs #{runs["msgpack-rs"].first["version"]} vs C msgpack #{runs["C"].first["version"]}; " \
         "median ops/s of #{rounds} alternating runs each"
    puts format("%-22s %12s %12s %9s", "benchmark", "msgpack-rs", "C", "ours/C")
    puts "-" * 58
    ratios = []
    runs["msgpack-rs"].first["ips"].each_key do |label|
      ours = median(runs["msgpack-rs"].map { |res| res["ips"][label] })
      c = median(runs["C"].map { |res| res["ips"][label] })
      ratio = ours / c
      ratios << ratio
      puts format("%-22s %12s %12s %8.2fx", label, fmt_ips(ours), fmt_ips(c), ratio)
    end
    puts "-" * 58
    geomean = Math.exp(ratios.sum { |x| Math.log(x) } / ratios.size)
    puts format("%-22s %12s %12s %8.2fx", "geometric mean", "", "", geomean)

    return unless ENV["BENCH_JSON"]

    File.write(ENV["BENCH_JSON"], JSON.pretty_generate("runs" => runs, "geomean" => geomean))
    puts "raw results: #{ENV["BENCH_JSON"]}"
  end
end

if ARGV.include?("--child")
  Shapes.child
else
  Shapes.parent
end
