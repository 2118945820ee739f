# frozen_string_literal: true

# A/B harness for the bench/*.rb comparisons of msgpack-rs against the C msgpack gem.
#
# Both libraries define `MessagePack`, so they never share a process: the parent
# (which never loads msgpack itself) starts one child per implementation per round,
#
#   msgpack-rs:  ruby -I lib   bench/NAME.rb --child
#   C gem:       ruby          bench/NAME.rb --child
#
# alternating A B, B A, A B, ... (the order flips every round, so slow drift of the
# machine's load hits both alike). Every child times every case, checks its
# payloads (unpack(pack(x)) must equal x strictly: class, encoding, value), and prints
# one line of JSON on stdout. The parent prints per-case ops/s of both, the ratio
# ours/C, the per-round ratio range, and geometric means; it also compares the
# packed-bytes digests and unpacked-object fingerprints across implementations.
#
# A bench file looks like:
#
#   require_relative "support/ab"
#   AB.main(__FILE__, title: "...") do |s|     # the block runs in children only
#     obj = {...}
#     s.section("pack") do
#       s.check("name", obj)                    # round trip + digests, returns packed bytes
#       s.bench("pack name", "MessagePack.pack(obj)", obj: obj)
#     end
#   end
#
# `s.bench(label, code, **vars)` compiles `code` into a `while` loop (no block call
# per iteration) with `vars` as its locals; `s.bench(label) { |n| ... }` takes a block
# that must run the operation n times itself.
#
# Timing, per case and child: a calibration pass picks n so that one batch of n
# operations takes BENCH_TIME / BENCH_SAMPLES seconds; batches then run for
# BENCH_WARMUP seconds (discarded) and BENCH_TIME seconds (kept, at least 3 batches).
# A child reports the median batch rate. Across rounds the parent takes the best
# (BENCH_STAT=best, the default: load from other processes only ever slows a run
# down) or the median (BENCH_STAT=median).
#
# Environment:
#   BENCH_ROUNDS   alternating rounds, one child of each implementation per round (3)
#   BENCH_TIME     measured seconds per case per child (0.8)
#   BENCH_WARMUP   warm-up seconds per case per child (0.2)
#   BENCH_SAMPLES  batches per case per child (10)
#   BENCH_STAT     best | median across rounds (best)
#   BENCH_FILTER   regexp; only cases whose "section: label" matches are timed
#                  (all checks still run)
#   BENCH_IMPLS    ours,c (default) | ours | c: which implementations to run
#   BENCH_JSON_DIR write the raw per-child results to DIR/NAME.json
#
# Other entry points:
#   ruby [-I lib] bench/NAME.rb --child          one child, prints JSON
#   ruby [-I lib] bench/NAME.rb --dump CHECK     the packed bytes of one check, raw on stdout
#   ruby [-I lib] bench/NAME.rb --list           check names and case labels
#
# Exit status of the parent: 0, or 1 if any child failed, any check failed, or the
# implementations disagreed on packed bytes or unpacked objects.

require "json"
require "digest"
require "rbconfig"

module AB
  REPO_ROOT = File.expand_path("../..", __dir__)
  REPO_LIB = File.join(REPO_ROOT, "lib")
  OURS = "msgpack-rs"
  C_GEM = "C"
  RESULT_MARK = "AB-RESULT "

  module_function

  def main(script, title:, &define)
    if ARGV.include?("--child")
      Child.new(define).run
    elsif (i = ARGV.index("--dump"))
      Child.new(define, timing: false).dump(ARGV.fetch(i + 1))
    elsif ARGV.include?("--list")
      Child.new(define, timing: false).list
    else
      exit(Parent.new(script, title).run)
    end
  end

  def env_f(name, default)
    Float(ENV.fetch(name, default.to_s))
  end

  def env_i(name, default)
    Integer(ENV.fetch(name, default.to_s))
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
    Case = Struct.new(:section, :label, :runner, :bytes)

    def initialize(define, timing: true)
      @define = define
      @timing = timing
      @cases = []
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

      @packed_for_dump[name] = packed if @packed_for_dump
      result = guard("check #{name}: unpack") { unpack.call(packed) }
      record_check(name, packed, result, expect)
      packed
    end

    # Like check, for a value produced some other way (streaming, options, ...):
    # records the unpacked fingerprint (and packed digest if given) and compares.
    def check_result(name, result, expect:, packed: nil)
      record_check(name, packed, result, expect)
    end

    def record_check(name, packed, result, expect)
      entry = {}
      if packed
        entry["bytes"] = packed.bytesize
        entry["sha"] = Digest::SHA256.hexdigest(packed)[0, 16]
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
      full = "#{@section}: #{label}"
      return if @filter && !@filter.match?(full)

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
      @cases << Case.new(@section, label, runner, bytes)
    end

    def impl
      @impl ||= $LOAD_PATH.any? { |p| File.expand_path(p) == REPO_LIB } ? OURS : C_GEM
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
      if impl == OURS && ours_so.none? { |f| f.start_with?("#{REPO_LIB}/") }
        abort "bench child: -I lib given but msgpack-rs was not loaded from #{REPO_LIB} (run script/build)"
      end
      abort "bench child: the C gem run loaded msgpack-rs (#{ours_so.join(", ")})" if impl == C_GEM && !ours_so.empty?
    end

    def define_all
      @filter = ENV["BENCH_FILTER"] && !ENV["BENCH_FILTER"].empty? ? Regexp.new(ENV["BENCH_FILTER"]) : nil
      started = AB.now
      @define.call(self)
      @setup_seconds = AB.now - started
    end

    def run
      load_msgpack
      define_all
      results = {}
      @cases.each do |c|
        full = "#{c.section}: #{c.label}"
        measured = guard("bench #{full}") { measure(c.runner) }
        next unless measured

        results[full] = measured.merge("section" => c.section, "label" => c.label, "bytes" => c.bytes)
      end
      $stdout.puts RESULT_MARK + JSON.generate(
        "impl" => impl,
        "version" => MessagePack::VERSION,
        "loaded" => $LOADED_FEATURES.grep(%r{/msgpack(_rs)?\.(so|bundle)\z}),
        "ruby" => RUBY_DESCRIPTION,
        "setup_seconds" => @setup_seconds,
        "cases" => results,
        "checks" => @checks,
        "errors" => @errors,
        "skipped" => @skipped,
      )
    end

    def dump(name)
      @packed_for_dump = {}
      load_msgpack
      define_all
      packed = @packed_for_dump[name] or abort "no check named #{name.inspect}; try --list"
      $stdout.binmode
      $stdout.write(packed)
    end

    def list
      load_msgpack
      define_all
      puts "checks:", @checks.keys.map { |k| "  #{k}" }
      puts "cases:", @cases.map { |c| "  #{c.section}: #{c.label}" }
      puts "skipped:", @skipped.map { |k, v| "  #{k} (#{v})" } unless @skipped.empty?
    end

    def measure(runner)
      time = AB.env_f("BENCH_TIME", 0.8)
      warmup = AB.env_f("BENCH_WARMUP", 0.2)
      samples = [AB.env_i("BENCH_SAMPLES", 10), 1].max
      batch_time = time / samples

      GC.start
      # Calibrate (this also warms up): grow n until a batch takes about batch_time.
      n = 1
      spent = 0.0
      loop do
        t = timed(runner, n)
        spent += t
        break if t >= batch_time * 0.5 || n >= 1 << 40

        n = t <= 0 ? n * 100 : [[(n * batch_time / t).ceil, n * 100].min, n * 2].max
      end
      n = [(n * batch_time / [timed(runner, n), 1e-9].max).round, 1].max if spent < batch_time * 4

      deadline = AB.now + [warmup - spent, 0].max
      timed(runner, n) while AB.now < deadline

      rates = []
      elapsed = 0.0
      while elapsed < time || rates.size < 3
        t = timed(runner, n)
        elapsed += t
        rates << n / t
        break if rates.size >= 3 && elapsed >= 3 * time # one op is slower than a batch
      end
      { "ips" => AB.median(rates), "best" => rates.max, "n" => n, "batches" => rates.size }
    end

    def timed(runner, n)
      t0 = AB.now
      runner.call(n)
      AB.now - t0
    end
  end

  # ---- parent ---------------------------------------------------------------------

  class Parent
    def initialize(script, title)
      @script = File.expand_path(script)
      @name = File.basename(script, ".rb")
      @title = title
      @rounds = AB.env_i("BENCH_ROUNDS", 3)
      @stat = ENV.fetch("BENCH_STAT", "best")
      abort "BENCH_STAT must be best or median" unless %w[best median].include?(@stat)
      impls = ENV.fetch("BENCH_IMPLS", "ours,c").downcase.split(",").map(&:strip)
      @impls = []
      @impls << OURS if impls.include?("ours")
      @impls << C_GEM if impls.include?("c")
      abort "BENCH_IMPLS must name ours and/or c" if @impls.empty?
      @runs = @impls.to_h { |i| [i, []] } # impl => [child result or nil per round]
      @problems = []
    end

    def run
      $stdout.sync = true
      started = AB.now
      @rounds.times do |r|
        order = r.even? ? @impls : @impls.reverse
        order.each { |impl| @runs[impl] << run_child(impl, r) }
      end
      $stderr.puts format("%s: %d rounds in %.0f s", @name, @rounds, AB.now - started)

      print_header
      print_table
      compare_checks
      print_problems
      write_json
      @problems.empty? ? 0 : 1
    end

    def run_child(impl, round)
      args = [RbConfig.ruby]
      args += ["-I", REPO_LIB] if impl == OURS
      args += [@script, "--child"]
      $stderr.print format("%s round %d/%d: %-10s ", @name, round + 1, @rounds, impl)
      t0 = AB.now
      out = IO.popen({ "RUBYLIB" => nil }, args, &:read)
      status = $?
      line = out.lines.reverse.find { |l| l.start_with?(RESULT_MARK) }
      if status.success? && line
        result = JSON.parse(line.delete_prefix(RESULT_MARK))
        $stderr.puts format("%5.1f s  (%s %s; payload setup and checks %.1f s)", AB.now - t0, impl,
                            result["version"], result["setup_seconds"])
        result["errors"].each do |e|
          msg = "#{impl}: #{e}"
          @problems << msg unless @problems.include?(msg)
        end
        result
      else
        $stderr.puts "FAILED (#{status.inspect})"
        @problems << "#{impl} round #{round + 1}: child failed, #{status.inspect}: #{args.join(" ")}"
        nil
      end
    end

    def ok_runs(impl)
      @runs.fetch(impl, []).compact
    end

    def print_header
      puts
      puts "== #{@title}"
      @impls.each do |impl|
        first = ok_runs(impl).first
        next puts("   #{impl}: no successful run") unless first

        puts "   #{impl.ljust(10)} #{first["version"].ljust(6)} #{first["loaded"].join(" ")}"
      end
      puts format("   %d alternating rounds; per child the median of batches over BENCH_TIME=%s s; " \
                  "across rounds the %s", @rounds, ENV.fetch("BENCH_TIME", "0.8"),
                  @stat == "best" ? "best child" : "median child")
      puts "   'rounds' is the range of the per-round ratios ours/C (pairs of adjacent children)"
    end

    def value_for(impl, key)
      values = ok_runs(impl).filter_map { |res| res["cases"].dig(key, "ips") }
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
      keys = []
      meta = {}
      @impls.each do |impl|
        ok_runs(impl).each do |res|
          res["cases"].each do |key, c|
            keys << key unless meta.key?(key)
            meta[key] ||= c
          end
        end
      end
      sections = keys.group_by { |k| meta[k]["section"] }
      both = @impls.size == 2
      width = [keys.map { |k| meta[k]["label"].size }.max.to_i, 24].max
      line = "-" * (width + (both ? 52 : 14))
      all_ratios = []
      @section_means = {}
      sections.each do |section, skeys|
        puts
        if both
          puts format("%-#{width}s %12s %12s %7s  %s", section, OURS, "C #{ok_runs(C_GEM).first&.dig("version")}",
                      "ours/C", "rounds")
        else
          puts format("%-#{width}s %12s", section, @impls.first)
        end
        puts line
        ratios = []
        skeys.each do |key|
          m = meta[key]
          if both
            ours = value_for(OURS, key)
            c = value_for(C_GEM, key)
            ratio = ours && c ? ours / c : nil
            ratios << ratio if ratio
            puts format("%-#{width}s %12s %12s %7s  %s", m["label"], fmt(ours, m["bytes"]), fmt(c, m["bytes"]),
                        ratio ? format("%.2fx", ratio) : "-", round_range(key))
            all_ratios << [ratio, key] if ratio
          else
            puts format("%-#{width}s %12s", m["label"], fmt(value_for(@impls.first, key), m["bytes"]))
          end
        end
        next unless both && !ratios.empty?

        @section_means[section] = AB.geomean(ratios)
        puts line
        puts format("%-#{width}s %12s %12s %6.2fx", "geometric mean (#{ratios.size})", "", "", AB.geomean(ratios))
      end
      skipped = @impls.flat_map { |i| (ok_runs(i).first || {}).fetch("skipped", {}).map { |k, v| "#{k} [#{i}: #{v}]" } }
      unless skipped.empty?
        puts
        puts "skipped: #{skipped.join("; ")}"
      end
      return unless both && !all_ratios.empty?

      geo = AB.geomean(all_ratios.map(&:first))
      min_ratio, min_key = all_ratios.min_by(&:first)
      max_ratio, max_key = all_ratios.max_by(&:first)
      puts
      puts format("%s overall: geometric mean %.2fx over %d ratios; min %.2fx (%s); max %.2fx (%s)",
                  @name, geo, all_ratios.size, min_ratio, min_key, max_ratio, max_key)
      @summary = { "geomean" => geo, "min" => min_ratio, "min_case" => min_key, "sections" => @section_means }
    end

    # Range of ratios from the children of each round (ours and C of the same round).
    def round_range(key)
      ours = @runs[OURS]
      c = @runs[C_GEM]
      ratios = ours.zip(c).filter_map do |a, b|
        x = a && a["cases"].dig(key, "ips")
        y = b && b["cases"].dig(key, "ips")
        x && y ? x / y : nil
      end
      return "" if ratios.empty?

      format("%.2f-%.2f", ratios.min, ratios.max)
    end

    def compare_checks
      reference = {}
      @impls.each do |impl|
        ok_runs(impl).each_with_index do |res, idx|
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
              msg << " (run #{idx + 1})" if impl == ref_impl
              if field == "sha"
                msg << format(" (%d vs %d bytes); compare `ruby -I lib %s --dump %s | xxd` with `ruby %s --dump %s | xxd`",
                              ref["bytes"], entry["bytes"], rel(@script), name.inspect, rel(@script), name.inspect)
              else
                diff = (ref["stats"].keys | entry["stats"].keys).filter_map do |k|
                  a = ref["stats"][k]
                  b = entry["stats"][k]
                  "#{k}: #{a || 0} vs #{b || 0}" unless a == b
                end
                msg << " (#{diff.empty? ? "same counts, different values" : diff.join(", ")})"
              end
              @problems << msg unless @problems.include?(msg)
            end
          end
        end
      end
      round_trips = @problems.any? { |p| p.include?("round trip differs") } ? "FAILED (see below)" : "ok"
      differ = @problems.any? { |p| p.include?(" differ between ") }
      across = if @impls.size < 2 then ""
               elsif differ then "; packed bytes / unpacked objects DIFFER across implementations (see below)"
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
                                            "problems" => @problems, "runs" => @runs))
      puts "raw results: #{path}"
    end
  end
end
