# frozen_string_literal: true

# bench/support/ab: AB::Child, what runs in every child process: loads one msgpack
# implementation, runs the bench file's block (the DSL: section / check / check_result /
# bench / skip / guard / error), then serves timing requests over stdin/stdout (--serve),
# or prints one check's packed bytes (--dump) or the names (--list).

module AB
  class Child
    include Timing

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
        unless StrictEquality.same?(result, expect, frozen: false)
          error("check #{name}: round trip differs: " \
                "#{StrictEquality.first_difference(expect, result, "expected", frozen: false)}")
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
  end
end
