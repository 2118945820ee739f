# frozen_string_literal: true

# bench/support/ab: AB::Server, the parent's handle on one server child (started with the
# snapshot of lib/ for msgpack-rs, or plain / BENCH_C_LIB for the C gem), and ChildDied.

require "json"
require "open3"

module AB
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
end
