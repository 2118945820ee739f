# frozen_string_literal: true

# Memory benchmark: resident memory of a sustained decode workload, msgpack-rs vs the
# C gem, and the speed of mapped-file decoding. Every measurement runs in a fresh
# process (`ruby -I lib` for msgpack-rs, plain `ruby` for the installed C gem).
#
#   ruby bench/rss.rb            # full run: ~160 MiB burst, 256 MiB file
#   QUICK=1 ruby bench/rss.rb    # smaller (a 48 MiB burst, a 64 MiB file)
#   ruby bench/rss.rb rss        # only the RSS part;  ... mapped: only the file part
#
# RSS workload: a stream of MessagePack messages (each an Array of log records,
# 1-4 MiB; then 100,000 small one-record messages) read from a file in 16, 64 or
# 256 KiB pieces (one process each) and fed to one Unpacker, as a server reads a
# socket; each decoded message is looked at and dropped. Reported per run and as
# the mean per implementation:
#   base      RSS after loading msgpack and reading nothing
#   peak      VmHWM at the end (the high-water mark of the whole run)
#   after     RSS after the burst and the small messages, after GC.start
#   compact   RSS after MessagePack.compact! and GC.start (the C gem has no compact!:
#             GC.start only, so its row shows what the GC alone gives back)
#   returned  (after - compact) / (after - base): share of the growth given back
#
# Mapped-file part: a file of log records (one per top-level object), then one of
# 64 KiB bin payloads, decoded with MessagePack::Unpacker.open(path).each, with
# MessagePack::Unpacker.new(File).each, and with the C gem's Unpacker over the File;
# MiB/s and objects/s (best of 3 fresh processes), peak RSS (the highest of the 3).
# The files are written to /tmp and deleted afterwards.

require "rbconfig"
require "json"
require "tmpdir"
require "fileutils"

module RssBench
  ROOT = File.expand_path("..", __dir__)
  SCRIPT = File.expand_path(__FILE__)
  QUICK = ENV["QUICK"] == "1"
  MiB = 1024 * 1024
  LEVELS = %w[debug info info warn].freeze
  AGENTS = ["curl/8.5.0", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
            "Go-http-client/2.0"].freeze

  def self.record(i)
    {
      "ts" => 1_700_000_000 + (i * 0.001), "level" => LEVELS[i % 4], "host" => "web-#{i % 32}.example.com",
      "service" => "api", "path" => "/api/v1/items/#{i % 1000}", "status" => [200, 200, 200, 404, 500][i % 5],
      "bytes" => (i * 7919) % 100_000, "duration_ms" => (i % 997) * 0.37,
      "request_id" => format("%016x", (i * 2_654_435_761) % (2**64)), "user_agent" => AGENTS[i % 3],
      "tags" => ["edge", "v#{i % 3}"], "message" => "handled request #{i} #{'x' * (i % 64)}",
    }
  end

  def self.rss_kib
    File.read("/proc/self/status")[/^VmRSS:\s+(\d+)/, 1].to_i
  end

  def self.hwm_kib
    File.read("/proc/self/status")[/^VmHWM:\s+(\d+)/, 1].to_i
  end

  def self.implementation
    $LOADED_FEATURES.grep(/msgpack_rs/).empty? ? "C gem #{MessagePack::VERSION}" : "msgpack-rs"
  end

  # ---- children (one measurement each) ----

  def self.child_rss(stream_path, read_size)
    require "msgpack"
    GC.start
    base = rss_kib
    unpacker = MessagePack::Unpacker.new
    messages = 0
    records = 0
    File.open(stream_path, "rb") do |file|
      buf = +""
      while file.read(read_size, buf)
        unpacker.feed_each(buf) do |msg|
          messages += 1
          records += msg.is_a?(Array) ? msg.size : 1
        end
      end
    end
    GC.start
    after = rss_kib
    report = nil
    if MessagePack.respond_to?(:compact!)
      report = MessagePack.compact!
      GC.start
    else
      GC.start
    end
    compact = rss_kib
    { impl: implementation, read_size: read_size, messages: messages, records: records, base: base, peak: hwm_kib,
      after: after, compact: compact, report: report&.to_s }
  end

  def self.child_mapped(path, how)
    require "msgpack"
    GC.start
    count = 0
    started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    case how
    when "mapped"
      MessagePack::Unpacker.open(path) { |u| u.each { count += 1 } }
    when "file"
      File.open(path, "rb") { |f| MessagePack::Unpacker.new(f).each { count += 1 } }
    end
    elapsed = Process.clock_gettime(Process::CLOCK_MONOTONIC) - started
    { impl: implementation, how: how, count: count, seconds: elapsed, peak: hwm_kib, size: File.size(path) }
  end

  # ---- parent ----

  def self.spawn_child(rs, *args)
    cmd = [RbConfig.ruby]
    cmd += ["-I", File.join(ROOT, "lib")] if rs
    cmd += [SCRIPT, "--child", *args]
    env = { "RUBYLIB" => nil, "RUBYOPT" => nil }
    out = IO.popen(env, cmd, chdir: rs ? ROOT : "/", &:read)
    raise "child failed: #{cmd.join(' ')}" unless $?.success?

    JSON.parse(out.lines.last, symbolize_names: true)
  end

  def self.c_gem_available?
    system({ "RUBYLIB" => nil, "RUBYOPT" => nil }, RbConfig.ruby, "-e",
           'require "msgpack"; exit($LOADED_FEATURES.grep(/msgpack_rs/).empty? ? 0 : 1)',
           chdir: "/", out: File::NULL, err: File::NULL)
  end

  def self.mib(kib)
    format("%.1f", kib / 1024.0)
  end

  def self.write_stream(path)
    $LOAD_PATH.unshift(File.join(ROOT, "lib"))
    require "msgpack"
    rng = Random.new(42)
    sample = MessagePack.pack(record(0)).bytesize
    target = (QUICK ? 48 : 160) * MiB
    written = 0
    i = 0
    File.open(path, "wb") do |f|
      packer = MessagePack::Packer.new(f)
      while written < target
        n = (rng.rand(1.0..4.0) * MiB / sample).to_i
        msg = Array.new(n) { record(i += 1) }
        bytes = MessagePack.pack(msg)
        f.write(bytes)
        written += bytes.bytesize
      end
      100_000.times { packer.write(record(i += 1)) }
      packer.flush
    end
    File.size(path)
  end

  # kind "records": log records, one per top-level object; "blobs": 64 KiB bin
  # payloads (where the copies an IO path makes show).
  def self.write_records(path, size, kind)
    $LOAD_PATH.unshift(File.join(ROOT, "lib"))
    require "msgpack"
    blob = Random.new(7).bytes(65_536)
    File.open(path, "wb") do |f|
      packer = MessagePack::Packer.new(f)
      i = 0
      packer.write(kind == "blobs" ? blob : record(i += 1)) while f.pos < size
      packer.flush
    end
    File.size(path)
  end

  def self.run_rss(dir, c_gem)
    path = File.join(dir, "stream.msgpack")
    size = write_stream(path)
    puts "RSS: #{mib(size / 1024)} MiB stream (1-4 MiB messages of log records, then 100,000 small ones) " \
         "read in 16, 64 and 256 KiB pieces fed to one Unpacker; fresh process each"
    puts
    # GC timing makes one run's peak swing by +-20% with small changes to the
    # workload (the decoded messages dominate RSS), so three read sizes are run and
    # averaged.
    rows = []
    READ_SIZES.each do |read_size|
      rows << spawn_child(true, "rss", path, read_size.to_s)
      rows << spawn_child(false, "rss", path, read_size.to_s) if c_gem
    end
    puts format("%-18s %5s %9s %9s %9s %9s %9s  %s", "MiB", "read", "base", "peak", "after", "compact", "returned", "")
    rows.each { |r| print_rss_row(r, "#{r[:read_size] / 1024}K") }
    rows.group_by { |r| r[:impl] }.each do |impl, runs|
      mean = %i[base peak after compact].to_h { |k| [k, runs.sum { |r| r[k] } / runs.size] }
      print_rss_row(mean.merge(impl: impl), "mean")
    end
    counts = rows.map { |r| r[:records] }.uniq
    warn "record counts differ: #{counts.inspect}" if counts.size > 1
    puts
    rows.select { |r| r[:report] }.each do |r|
      puts "msgpack-rs #{r[:read_size] / 1024}K: MessagePack.compact! #{r[:report]}"
    end
    puts
  ensure
    FileUtils.rm_f(path) if path
  end

  READ_SIZES = [16_384, 65_536, 262_144].freeze

  def self.print_rss_row(r, label)
    growth = r[:after] - r[:base]
    returned = growth.positive? ? format("%d%%", 100.0 * (r[:after] - r[:compact]) / growth) : "-"
    note = r[:impl] == "msgpack-rs" ? "MessagePack.compact! + GC.start" : "GC.start only (no compact!)"
    puts format("%-18s %5s %9s %9s %9s %9s %9s  %s", r[:impl], label, mib(r[:base]), mib(r[:peak]), mib(r[:after]),
                mib(r[:compact]), returned, note)
  end

  def self.run_mapped(dir, c_gem)
    %w[records blobs].each do |kind|
      path = File.join(dir, "#{kind}.msgpack")
      size = write_records(path, (QUICK ? 64 : 256) * MiB, kind)
      what = kind == "records" ? "log records (one top-level object each)" : "64 KiB bin payloads"
      puts "Mapped-file decoding: #{mib(size / 1024)} MiB file of #{what}; best of #{MAPPED_RUNS} fresh processes"
      puts
      runs = [[true, "mapped"], [true, "file"]]
      runs << [false, "file"] if c_gem
      results = runs.to_h { |rs, how| [[rs, how], []] }
      # Interleaved, so a burst of load from other processes hits every variant alike.
      MAPPED_RUNS.times { runs.each { |rs, how| results[[rs, how]] << spawn_child(rs, "mapped", path, how) } }
      puts format("%-18s %-28s %9s %11s %9s", "", "", "MiB/s", "objects/s", "peak MiB")
      results.each_value do |tries|
        r = tries.min_by { |t| t[:seconds] }
        how = r[:how] == "mapped" ? "Unpacker.open(path).each" : "Unpacker.new(File).each"
        puts format("%-18s %-28s %9.1f %11.0f %9s", r[:impl], how, r[:size] / MiB.to_f / r[:seconds],
                    r[:count] / r[:seconds], mib(tries.map { |t| t[:peak] }.max))
      end
      puts
    ensure
      FileUtils.rm_f(path) if path
    end
  end

  MAPPED_RUNS = 3

  def self.main(args)
    if args.first == "--child"
      result = args[1] == "rss" ? child_rss(args[2], Integer(args[3])) : child_mapped(args[2], args[3])
      puts JSON.generate(result)
      return
    end
    parts = args.empty? ? %w[rss mapped] : args
    c_gem = c_gem_available?
    warn "The C gem is not installed (apt-get install ruby-msgpack): msgpack-rs only." unless c_gem
    puts "#{RUBY_DESCRIPTION}; #{`uname -r`.strip}; #{File.read('/proc/cpuinfo')[/model name\s*: (.*)/, 1]}"
    puts
    Dir.mktmpdir("msgpack-rss") do |dir|
      run_rss(dir, c_gem) if parts.include?("rss")
      run_mapped(dir, c_gem) if parts.include?("mapped")
    end
  end
end

RssBench.main(ARGV) if $PROGRAM_NAME == __FILE__
