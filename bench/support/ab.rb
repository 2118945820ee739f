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
# unpack(pack(x)) must equal x strictly (class, string encoding and bytes, Float bits,
# Hash order); the parent then compares the digest of the packed bytes and a
# fingerprint of the unpacked objects (including frozenness) across implementations.
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

require "json"
require "digest"
require "rbconfig"
require "open3"

module AB
  REPO_ROOT = File.expand_path("../..", __dir__)
  REPO_LIB = File.join(REPO_ROOT, "lib")
  OURS = "msgpack-rs"
  C_GEM = "C"
  READY_MARK = "AB-READY "
  RESULT_MARK = "AB-RESULT "
  DEFAULTS = { "BENCH_ROUNDS" => 4, "BENCH_TIME" => 0.5, "BENCH_WARMUP" => 0.15, "BENCH_SAMPLES" => 10 }.freeze

  module_function

  # gc: true (or BENCH_GC=1) adds GC columns: GC runs and milliseconds spent in GC per
  # 1,000 operations, for each implementation (median across rounds).
  def main(script, title:, gc: false, &define)
    if ARGV.include?("--serve")
      Child.new(define).serve
    elsif (i = ARGV.index("--dump"))
      Child.new(define).dump(ARGV.fetch(i + 1))
    elsif ARGV.include?("--list")
      Child.new(define).list
    else
      exit(Parent.new(script, title, gc: gc || ENV["BENCH_GC"] == "1").run)
    end
  end

  def env_f(name)
    Float(ENV.fetch(name, DEFAULTS.fetch(name).to_s))
  end

  def env_i(name)
    Integer(ENV.fetch(name, DEFAULTS.fetch(name).to_s))
  end

  def now
    Process.clock_gettime(Process::CLOCK_MONOTONIC)
  end

  def median(values)
    sorted = values.sort
    mid = sorted.size / 2
    sorted.size.odd? ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2.0
  end

  def geomean(values)
    return nil if values.empty?

    Math.exp(values.sum { |x| Math.log(x) } / values.size)
  end

  # ---- object comparison ----------------------------------------------------------

  # Strict structural equality: same classes (so 1 != 1.0), same string encodings and
  # bytes, same Hash key order, Floats compared bit-for-bit (NaN == NaN, 0.0 != -0.0).
  def same?(a, b)
    return false unless a.class == b.class

    case a
    when String then a.encoding == b.encoding && a.bytesize == b.bytesize && a.b == b.b
    when Float then [a].pack("G") == [b].pack("G")
    when Array then a.size == b.size && a.each_index.all? { |i| same?(a[i], b[i]) }
    when Hash
      a.size == b.size && a.keys.zip(b.keys).all? { |x, y| same?(x, y) } &&
        a.each_value.zip(b.each_value).all? { |x, y| same?(x, y) }
    when Struct then same?(a.to_a, b.to_a)
    when Time then a == b && a.nsec == b.nsec
    else a == b
    end
  end

  # Where two objects first differ, for error messages.
  def first_difference(a, b, path = "obj")
    return "#{path}: #{a.class} vs #{b.class}" unless a.class == b.class

    case a
    when Array
      return "#{path}: size #{a.size} vs #{b.size}" unless a.size == b.size

      a.each_index do |i|
        d = first_difference(a[i], b[i], "#{path}[#{i}]")
        return d if d
      end
      nil
    when Hash
      return "#{path}: size #{a.size} vs #{b.size}" unless a.size == b.size

      a.keys.zip(b.keys).each_with_index do |(x, y), i|
        return "#{path}: key ##{i} #{x.inspect[0, 60]} vs #{y.inspect[0, 60]}" unless same?(x, y)

        d = first_difference(a[x], b[y], "#{path}[#{x.inspect[0, 40]}]")
        return d if d
      end
      nil
    when Struct
      first_difference(a.to_a, b.to_a, "#{path}.to_a")
    else
      return nil if same?(a, b)

      detail = ->(o) { o.is_a?(String) ? "#{o.encoding} #{o.bytesize} B #{o.inspect[0, 60]}" : o.inspect[0, 80] }
      "#{path}: #{detail.(a)} vs #{detail.(b)}"
    end
  end

  # A digest of an object graph that includes what `same?` checks plus frozenness.
  # `stats` counts objects by kind ("str UTF-8 frozen" => 12, ...), to explain a
  # fingerprint mismatch between implementations.
  def fingerprint(obj)
    digest = Digest::SHA256.new
    stats = Hash.new(0)
    describe(obj, digest, stats)
    [digest.hexdigest[0, 16], stats.sort.to_h]
  end

  def describe(o, d, stats)
    fz = o.frozen? ? "frozen" : "mutable"
    case o
    when String
      stats["str #{o.encoding} #{fz}"] += 1
      d << "s#{o.encoding.name}/#{fz}/#{o.bytesize}:" << o.b
    when Symbol then stats["symbol"] += 1
                     d << "y#{o.to_s.bytesize}:" << o.to_s.b
    when Integer then stats["int"] += 1
                      d << "i#{o};"
    when Float then stats["float"] += 1
                    d << "f" << [o].pack("G")
    when nil, true, false then d << "#{o.inspect};"
    when Array
      stats["array #{fz}"] += 1
      d << "a#{o.size}/#{fz}["
      o.each { |x| describe(x, d, stats) }
      d << "]"
    when Hash
      stats["hash #{fz}"] += 1
      d << "h#{o.size}/#{fz}{"
      o.each do |k, v|
        describe(k, d, stats)
        describe(v, d, stats)
      end
      d << "}"
    when Time
      stats["time"] += 1
      d << "t#{o.to_i}.#{o.nsec};"
    when Struct
      stats["struct #{o.class.name}"] += 1
      d << "S#{o.class.name}("
      o.to_a.each { |x| describe(x, d, stats) }
      d << ")"
    else
      stats[o.class.name.to_s] += 1
      vars = o.instance_variables.map { |iv| [iv, o.instance_variable_get(iv)] }
      d << "o#{o.class.name}("
      vars.each do |iv, v|
        d << iv.to_s
        describe(v, d, stats)
      end
      d << ")"
    end
  end


  # ---- child ----------------------------------------------------------------------

  class Child
    Case = Struct.new(:key, :section, :label, :runner, :bytes, :n)

    def initialize(define)
      @define = define
      @cases = {}
      @checks = {}
      @errors = []
      @skipped = {}
      @section = "main"
    end

    # --- the DSL the bench files use ---

    def section(name)
      previous = @section
      @section = name
      guard("section #{name}") { yield }
    ensure
      @section = previous
    end

    # Run a block, recording (not raising) an exception, so one broken case does not
    # stop the rest. Returns the block's value or nil.
    def guard(what)
      yield
    rescue StandardError, NotImplementedError => e
      error("#{what}: #{e.class}: #{e.message} (#{e.backtrace&.first})")
      nil
    end

    def error(message)
      warn "bench child (#{impl}): #{message}"
      @errors << message
    end

    def skip(label, reason)
      @skipped["#{@section}: #{label}"] = reason
    end

    # Pack obj (with `pack`), unpack it again (with `unpack`), require the result to
    # equal `expect` (default obj) strictly, and record the packed bytes' digest and
    # the unpacked object's fingerprint for the cross-implementation comparison.
    # Returns the packed bytes (nil if packing raised).
    def check(name, obj, expect: obj, pack: nil, unpack: nil)
      pack ||= ->(o) { MessagePack.pack(o) }
      unpack ||= ->(bytes) { MessagePack.unpack(bytes) }
      packed = guard("check #{name}: pack") { pack.call(obj) }
      return nil unless packed

      result = guard("check #{name}: unpack") { unpack.call(packed) }
      record_check(name, packed, result, expect)
      packed
    end

    # Like check, for a value produced some other way (streaming, options, ...):
    # records the fingerprint of `result` (and the digest of `packed` if given) and
    # requires `result` to equal `expect` strictly.
    def check_result(name, result, expect:, packed: nil)
      record_check(name, packed, result, expect)
    end

    def record_check(name, packed, result, expect)
      entry = {}
      if packed
        entry["bytes"] = packed.bytesize
        entry["sha"] = Digest::SHA256.hexdigest(packed)[0, 16]
        @packed[name] = packed
      end
      if !result.nil? || expect.nil?
        entry["fp"], entry["stats"] = AB.fingerprint(result)
        unless AB.same?(result, expect)
          error("check #{name}: round trip differs: #{AB.first_difference(expect, result, "expected")}")
          entry["roundtrip"] = false
        end
      end
      @checks[name] = entry
    end

    # A timed case. `code` is Ruby source run in a `while` loop with `vars` as locals,
    # or a block `{ |n| ... }` that runs the operation n times. `bytes`: payload size
    # per operation, to print MB/s instead of ops/s.
    def bench(label, code = nil, bytes: nil, **vars, &block)
      key = "#{@section}: #{label}"
      return if @filter && !@filter.match?(key)
      raise ArgumentError, "duplicate case #{key}" if @cases.key?(key)

      runner =
        if code
          names = vars.keys
          fn = eval(<<~RUBY, TOPLEVEL_BINDING, "(bench #{label})", 1) # rubocop:disable Security/Eval
            ->(__n#{names.map { |v| ", #{v}" }.join}) do
              __i = 0
              while __i < __n
                #{code}
                __i += 1
              end
            end
          RUBY
          args = vars.values
          ->(n) { fn.call(n, *args) }
        else
          block
        end
      @cases[key] = Case.new(key, @section, label, runner, bytes, nil)
    end

    # The lib directory msgpack-rs is loaded from: the parent's snapshot (AB_OURS_LIB) or
    # the repository's lib/ when run by hand with -I lib; nil for the C gem.
    def ours_lib
      return @ours_lib if defined?(@ours_lib)

      candidates = [ENV["AB_OURS_LIB"], REPO_LIB].compact.map { |d| File.expand_path(d) }
      @ours_lib = $LOAD_PATH.map { |p| File.expand_path(p) }.find { |p| candidates.include?(p) }
    end

    def impl
      ours_lib ? OURS : C_GEM
    end

    # --- running ---

    def load_msgpack
      unless impl == OURS
        begin
          gem "msgpack" # the C gem, even if a msgpack-rs gem is installed as well
        rescue Gem::LoadError
          nil
        end
      end
      require "msgpack"
      ours_so = $LOADED_FEATURES.grep(/msgpack_rs\.(so|bundle)\z/)
      if impl == OURS && ours_so.none? { |f| f.start_with?("#{ours_lib}/") }
        abort "bench child: -I #{ours_lib} given but msgpack-rs was not loaded from there (run script/build)"
      end
      abort "bench child: the C gem run loaded msgpack-rs (#{ours_so.join(", ")})" if impl == C_GEM && !ours_so.empty?
    end

    def define_all
      load_msgpack
      filter = ENV["BENCH_FILTER"]
      @filter = filter && !filter.empty? ? Regexp.new(filter) : nil
      @packed = {}
      started = AB.now
      @define.call(self)
      @setup_seconds = AB.now - started
    end

    def libraries
      $LOADED_FEATURES.grep(%r{/msgpack(_rs)?\.(so|bundle)\z})
    end

    def serve
      protocol = $stdout.dup
      protocol.sync = true
      $stdout = $stderr # nothing else may write to the protocol stream
      define_all
      protocol.puts READY_MARK + JSON.generate(
        "impl" => impl,
        "version" => MessagePack::VERSION,
        "loaded" => libraries,
        "library_sha" => libraries.map { |f| Digest::SHA256.file(f).hexdigest[0, 12] }.join(","),
        "ruby" => RUBY_DESCRIPTION,
        "setup_seconds" => @setup_seconds,
        "cases" => @cases.values.map { |c| { "key" => c.key, "section" => c.section, "label" => c.label, "bytes" => c.bytes } },
        "checks" => @checks,
        "errors" => @errors,
        "skipped" => @skipped,
      )
      while (line = $stdin.gets)
        command, key = JSON.parse(line)
        break if command == "quit"

        c = @cases.fetch(key)
        errors_before = @errors.size
        measured = guard("bench #{key}") { measure(c) }
        reply = measured || { "error" => @errors[errors_before..].join("; ") }
        protocol.puts RESULT_MARK + JSON.generate(reply)
      end
    end

    def dump(name)
      $stdout.binmode
      out = $stdout.dup
      $stdout = $stderr
      define_all
      packed = @packed[name] or abort "no packed bytes for a check named #{name.inspect}; try --list"
      out.write(packed)
    end

    def list
      define_all
      puts "checks:", @checks.keys.map { |k| "  #{k}" }
      puts "cases:", @cases.keys.map { |k| "  #{k}" }
      puts "skipped:", @skipped.map { |k, v| "  #{k} (#{v})" } unless @skipped.empty?
      puts "errors:", @errors.map { |e| "  #{e}" } unless @errors.empty?
    end

    def measure(c)
      time = AB.env_f("BENCH_TIME")
      warmup = AB.env_f("BENCH_WARMUP")
      batch_time = time / [AB.env_i("BENCH_SAMPLES"), 1].max

      GC.start
      spent = 0.0
      c.n ||= begin
        # Calibrate (this also warms up): grow n until a batch takes about batch_time.
        n = 1
        loop do
          t = timed(c.runner, n)
          spent += t
          break if t >= batch_time * 0.5 || n >= 1 << 40

          n = t <= 0 ? n * 100 : (n * batch_time / t).ceil.clamp(n * 2, n * 100)
        end
        t = timed(c.runner, n)
        spent += t
        [(n * batch_time / [t, 1e-9].max).round, 1].max
      end
      n = c.n

      deadline = AB.now + [warmup - spent, 0].max
      timed(c.runner, n) while AB.now < deadline

      rates = []
      elapsed = 0.0
      gc_count = GC.count
      gc_ms = GC.stat(:time)
      while elapsed < time || rates.size < 3
        t = timed(c.runner, n)
        elapsed += t
        rates << n / t
        break if rates.size >= 3 && elapsed >= 3 * time # one op is slower than a batch
      end
      ops = n * rates.size
      { "ips" => AB.median(rates), "best" => rates.max, "n" => n, "batches" => rates.size,
        # GC runs per 1,000 operations, and milliseconds spent in GC per 1,000 operations.
        "gc_per_kop" => (GC.count - gc_count) * 1000.0 / ops,
        "gc_ms_per_kop" => (GC.stat(:time) - gc_ms) * 1000.0 / ops }
    end

    def timed(runner, n)
      t0 = AB.now
      runner.call(n)
      AB.now - t0
    end
  end

  # ---- parent ---------------------------------------------------------------------

  class ChildDied < StandardError; end

  # One server child, driven over its stdin/stdout.
  class Server
    attr_reader :impl, :ready

    def initialize(impl, script, ours_lib)
      @impl = impl
      args = [RbConfig.ruby]
      args += ["-I", ours_lib] if impl == OURS
      # A C gem built locally for this Ruby (none packaged for it), e.g. msgpack-ruby's
      # ext built with this Ruby outside the repository: see script/bench.
      c_lib = ENV["BENCH_C_LIB"]
      args += ["-I", File.expand_path(c_lib)] if impl == C_GEM && c_lib && !c_lib.empty?
      args += [script, "--serve"]
      @command = args.join(" ")
      env = { "RUBYLIB" => nil, "AB_OURS_LIB" => impl == OURS ? ours_lib : nil }
      @in, @out, @thread = Open3.popen2(env, *args)
    end

    def wait_ready
      @ready = JSON.parse(read_reply(READY_MARK))
    end

    def measure(key)
      @in.puts JSON.generate(["measure", key])
      JSON.parse(read_reply(RESULT_MARK))
    rescue Errno::EPIPE
      raise ChildDied, died_message
    end

    def quit
      @in.puts JSON.generate(["quit"])
      @in.close
      @thread.value
    rescue Errno::EPIPE, IOError
      @thread.value
    end

    def kill
      Process.kill(:KILL, @thread.pid)
      @thread.value
    rescue Errno::ESRCH
      nil
    end

    private

    def read_reply(mark)
      while (line = @out.gets)
        return line.delete_prefix(mark) if line.start_with?(mark)
      end
      raise ChildDied, died_message
    end

    def died_message
      @in.close unless @in.closed?
      "#{@command} died: #{@thread.value.inspect}"
    end
  end

  class Parent
    def initialize(script, title, gc: false)
      @script = File.expand_path(script)
      @show_gc = gc
      @name = File.basename(script, ".rb")
      @title = title
      @rounds = AB.env_i("BENCH_ROUNDS")
      @stat = ENV.fetch("BENCH_STAT", "best")
      abort "BENCH_STAT must be best or median" unless %w[best median].include?(@stat)
      wanted = ENV.fetch("BENCH_IMPLS", "ours,c").downcase.split(",").map(&:strip)
      @impls = [[OURS, "ours"], [C_GEM, "c"]].filter_map { |impl, short| impl if wanted.include?(short) }
      abort "BENCH_IMPLS must name ours and/or c" if @impls.empty?
      @ready = @impls.to_h { |i| [i, []] }               # impl => [ready message per round]
      @values = @impls.to_h { |i| [i, Hash.new { |h, k| h[k] = [] }] } # impl => key => [ips per round]
      @gc = @impls.to_h { |i| [i, Hash.new { |h, k| h[k] = [] }] }     # impl => key => [[gc/kop, share]]
      @meta = {}                                         # key => case metadata, in order
      @problems = []
    end

    def run
      $stdout.sync = true
      snapshot_lib if @impls.include?(OURS)
      started = AB.now
      @rounds.times { |r| run_round(r) }
      $stderr.puts format("%s: %d rounds in %.0f s", @name, @rounds, AB.now - started)

      library_changes
      print_header
      print_table
      compare_checks
      print_problems
      write_json
      @problems.empty? ? 0 : 1
    end

    # msgpack-rs is loaded from a private copy of lib/, taken once: every round then
    # times the same build, and rebuilding lib/msgpack/msgpack_rs.so during the run
    # (a plain `cp` over it rewrites the file that running children have mapped, which
    # crashes them with SIGBUS/SIGSEGV) cannot touch the children.
    def snapshot_lib
      require "tmpdir"
      require "fileutils"
      @snapshot_dir = Dir.mktmpdir("msgpack-rs-bench-")
      @ours_lib = File.join(@snapshot_dir, "lib")
      FileUtils.cp_r(REPO_LIB, @ours_lib)
      dir = @snapshot_dir
      at_exit { FileUtils.rm_rf(dir) }
    end

    def problem(message)
      @problems << message unless @problems.include?(message)
    end

    def start_servers(r)
      servers = {}
      @impls.each { |impl| servers[impl] = Server.new(impl, @script, @ours_lib) } # set up concurrently
      servers.each do |impl, server|
        ready = server.wait_ready
        @ready[impl][r] = ready
        ready["errors"].each { |e| problem("#{impl}: #{e}") }
        ready["cases"].each { |c| @meta[c["key"]] ||= c }
      rescue ChildDied => e
        problem("#{impl} round #{r + 1}: #{e.message}")
        servers.delete(impl)
      end
      servers
    end

    def run_round(r)
      t0 = AB.now
      $stderr.print format("%s round %d/%d: ", @name, r + 1, @rounds)
      servers = start_servers(r)
      $stderr.print format("ready in %.1f s; ", AB.now - t0)
      @meta.keys.each_with_index do |key, k|
        order = (r + k).even? ? @impls : @impls.reverse
        order.each do |impl|
          server = servers[impl] or next
          next unless server.ready["cases"].any? { |c| c["key"] == key }

          begin
            reply = server.measure(key)
            if reply["ips"]
              @values[impl][key][r] = reply["ips"]
              @gc[impl][key][r] = [reply["gc_per_kop"], reply["gc_ms_per_kop"]]
            else
              problem("#{impl}: #{reply["error"]}")
            end
          rescue ChildDied => e
            problem("#{impl} round #{r + 1}: crashed while timing #{key.inspect}: #{e.message}")
            # Replace the child so the remaining cases still run.
            fresh = Server.new(impl, @script, @ours_lib)
            begin
              fresh.wait_ready
              servers[impl] = fresh
            rescue ChildDied
              servers.delete(impl)
            end
          end
        end
        $stderr.print "."
      end
      servers.each_value(&:quit)
      $stderr.puts format(" %.0f s", AB.now - t0)
    rescue Interrupt
      servers&.each_value(&:kill)
      raise
    end

    # The lead may rebuild lib/msgpack/msgpack_rs.so while a comparison runs.
    def library_changes
      @impls.each do |impl|
        shas = @ready[impl].compact.map { |res| res["library_sha"] }.uniq
        next if shas.size <= 1

        problem("#{impl}: the loaded library changed between rounds (sha256 #{shas.join(", ")}); rerun")
      end
    end

    def first_ready(impl)
      @ready[impl].compact.first
    end

    def print_header
      puts
      puts "== #{@title}"
      @impls.each do |impl|
        first = first_ready(impl)
        next puts("   #{impl}: no successful run") unless first

        loaded = first["loaded"].map { |f| @ours_lib ? f.sub("#{@ours_lib}/", "lib/") : f }.join(" ")
        copy = impl == OURS ? ", copied at start" : ""
        puts "   #{impl.ljust(10)} #{first["version"].ljust(6)} #{loaded} (sha256 #{first["library_sha"]}#{copy})"
      end
      puts format("   %d rounds, cases alternating between the implementations; per round and child the median " \
                  "of batches over %s s; across rounds the %s. 'rounds': range of the per-round ratios",
                  @rounds, AB.env_f("BENCH_TIME"), @stat == "best" ? "best" : "median")
    end

    def value_for(impl, key)
      values = @values[impl][key].compact
      return nil if values.empty?

      @stat == "best" ? values.max : AB.median(values)
    end

    def fmt(ips, bytes)
      return "-" unless ips

      if bytes
        mbs = ips * bytes / 1e6
        if mbs >= 1e7 then format("%.0f TB/s", mbs / 1e6) # zero-copy: a shared string, not a copy
        elsif mbs >= 1e4 then format("%.0f GB/s", mbs / 1e3)
        elsif mbs >= 100 then format("%.0f MB/s", mbs)
        else format("%.1f MB/s", mbs)
        end
      elsif ips >= 1e6 then format("%.2f M/s", ips / 1e6)
      elsif ips >= 1e3 then format("%.1f k/s", ips / 1e3)
      else format("%.1f /s", ips)
      end
    end

    def print_table
      both = @impls.size == 2
      width = [@meta.values.map { |m| m["label"].size }.max.to_i, 24].max
      line = "-" * (width + (both ? 52 : 14))
      all_ratios = []
      @section_means = {}
      c_version = @impls.include?(C_GEM) ? first_ready(C_GEM)&.dig("version") : nil
      @meta.keys.group_by { |k| @meta[k]["section"] }.each do |section, keys|
        puts
        if both
          puts format("%-#{width}s %12s %12s %7s  %-11s%s", section, OURS, "C #{c_version}", "ours/C", "rounds",
                      @show_gc ? gc_header : "")
        else
          puts format("%-#{width}s %12s%s", section, @impls.first, @show_gc ? " %9s %9s" % ["GC/1k", "GCms/1k"] : "")
        end
        puts line
        ratios = []
        keys.each do |key|
          m = @meta[key]
          unless both
            puts format("%-#{width}s %12s%s", m["label"], fmt(value_for(@impls.first, key), m["bytes"]),
                        @show_gc ? gc_cells(key) : "")
            next
          end
          ours = value_for(OURS, key)
          c = value_for(C_GEM, key)
          ratio = ours && c ? ours / c : nil
          if ratio
            ratios << ratio
            all_ratios << [ratio, key]
          end
          puts format("%-#{width}s %12s %12s %7s  %-11s%s", m["label"], fmt(ours, m["bytes"]), fmt(c, m["bytes"]),
                      ratio ? format("%.2fx", ratio) : "-", round_range(key), @show_gc ? gc_cells(key) : "")
        end
        next if ratios.empty?

        @section_means[section] = AB.geomean(ratios)
        puts line
        puts format("%-#{width}s %12s %12s %6.2fx", "geometric mean (#{ratios.size})", "", "", AB.geomean(ratios))
      end
      skipped = @impls.flat_map do |i|
        (first_ready(i) || {}).fetch("skipped", {}).map { |k, v| "#{k} [#{i}: #{v}]" }
      end
      unless skipped.empty?
        puts
        puts "skipped: #{skipped.join("; ")}"
      end
      return if all_ratios.empty?

      geo = AB.geomean(all_ratios.map(&:first))
      min_ratio, min_key = all_ratios.min_by(&:first)
      max_ratio, max_key = all_ratios.max_by(&:first)
      puts
      puts format("%s overall: geometric mean %.2fx over %d ratios; min %.2fx (%s); max %.2fx (%s)",
                  @name, geo, all_ratios.size, min_ratio, min_key, max_ratio, max_key)
      @summary = { "geomean" => geo, "min" => min_ratio, "min_case" => min_key, "sections" => @section_means }
    end

    def gc_header
      format(" %9s %9s %9s %9s", "GC/1k:rs", "GC/1k:C", "GCms/1k:rs", "GCms/1k:C")
    end

    # Median across rounds of GC runs per 1,000 operations and of the GC time share.
    def gc_cells(key)
      cells = @impls.map do |impl|
        rows = @gc[impl][key].compact
        next [nil, nil] if rows.empty?

        [AB.median(rows.map(&:first)), AB.median(rows.map(&:last))]
      end
      per_kop = cells.map { |c| c[0] ? format("%.2f", c[0]) : "-" }
      ms = cells.map { |c| c[1] ? format("%.1f", c[1]) : "-" }
      return format(" %9s %9s", per_kop[0], ms[0]) if cells.size == 1

      format(" %9s %9s %9s %9s", per_kop[0], per_kop[1], ms[0], ms[1])
    end

    # Range of the ratios ours/C of each round (timed seconds apart).
    def round_range(key)
      ours = @values[OURS][key]
      c = @values[C_GEM][key]
      ratios = (0...@rounds).filter_map { |r| ours[r] && c[r] ? ours[r] / c[r] : nil }
      return "" if ratios.empty?

      format("%.2f-%.2f", ratios.min, ratios.max)
    end

    def compare_checks
      reference = {}
      @impls.each do |impl|
        @ready[impl].each_with_index do |res, idx|
          next unless res

          res["checks"].each do |name, entry|
            ref_impl, ref = reference[name]
            unless ref
              reference[name] = [impl, entry]
              next
            end
            %w[sha fp].each do |field|
              next if entry[field].nil? || ref[field].nil? || entry[field] == ref[field]

              what = field == "sha" ? "packed bytes" : "unpacked objects"
              msg = +"#{name}: #{what} differ between #{ref_impl} and #{impl}"
              msg << " (round #{idx + 1})" if impl == ref_impl
              if field == "sha"
                msg << format(" (%d vs %d bytes); compare `ruby -I lib %s --dump %s | xxd` with `ruby %s --dump %s | xxd`",
                              ref["bytes"], entry["bytes"], rel(@script), name.inspect, rel(@script), name.inspect)
              else
                diff = (ref["stats"].keys | entry["stats"].keys).filter_map do |k|
                  a = ref["stats"][k]
                  b = entry["stats"][k]
                  "#{k}: #{a || 0} vs #{b || 0}" unless a == b
                end
                msg << " (#{diff.empty? ? "same kinds and counts, different values" : diff.join(", ")})"
              end
              problem(msg)
            end
          end
        end
      end
      round_trips = @problems.any? { |p| p.include?("round trip differs") } ? "FAILED (see below)" : "ok"
      across = if @impls.size < 2 then ""
               elsif @problems.any? { |p| p.include?(" differ between ") }
                 "; packed bytes / unpacked objects DIFFER across implementations (see below)"
               else "; packed bytes and unpacked objects identical across implementations"
               end
      puts
      puts "checks: #{reference.size} payloads; round trips in every child #{round_trips}#{across}"
    end

    def rel(path)
      path.delete_prefix("#{REPO_ROOT}/")
    end

    def print_problems
      return if @problems.empty?

      puts
      puts "PROBLEMS (#{@problems.size}):"
      @problems.each { |p| puts "  - #{p}" }
    end

    def write_json
      dir = ENV["BENCH_JSON_DIR"]
      return if dir.nil? || dir.empty?

      require "fileutils"
      FileUtils.mkdir_p(dir)
      path = File.join(dir, "#{@name}.json")
      File.write(path, JSON.pretty_generate("name" => @name, "stat" => @stat, "summary" => @summary,
                                            "problems" => @problems, "cases" => @meta,
                                            "ips_per_round" => @values, "children" => @ready))
      puts "raw results: #{path}"
    end
  end
end
