# frozen_string_literal: true

# bench/support/ab: AB::Parent, the process that never loads msgpack: snapshots lib/, runs
# the rounds (a fresh pair of server children each, cases alternating between them) and
# collects the results; AB::Report (report.rb) prints them.

module AB
  class Parent
    include Report

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
  end
end
