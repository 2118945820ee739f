# frozen_string_literal: true

require "msgpack/memory"

module MessagePack
  # Gives memory back when the system is short of it: a background thread waits for
  # Linux PSI memory-pressure events and runs MessagePack.compact! (then your block,
  # e.g. GC.start) on each.
  #
  #   MessagePack::MemoryPressure.watch(logger: Rails.logger) { GC.start }
  #   ...
  #   MessagePack::MemoryPressure.stop
  #
  # Where it listens, in order (the systemd protocol, as sd_event_add_memory_pressure):
  #
  # 1. the `path:` option (with `write:` as the trigger to write to it, if any);
  # 2. $MEMORY_PRESSURE_WATCH, with the Base64 data in $MEMORY_PRESSURE_WRITE written to
  #    it (systemd sets both for services with MemoryPressureWatch=). "/dev/null"
  #    means "disabled": watch returns false;
  # 3. the cgroup v2 memory.pressure file of this process's cgroup, else
  #    /proc/pressure/memory, with a trigger made from threshold/window/kind.
  #
  # The path may be a PSI file (procfs or cgroupfs: the trigger is written to it and the
  # thread polls for POLLPRI), a FIFO (each write to it is an event; handy for tests and
  # for supervisors that decide themselves) or a Unix socket (connected to; each message
  # is an event).
  #
  # Where PSI is unavailable (a kernel before 4.20 or without CONFIG_PSI, psi=0, a
  # container that hides /proc/pressure, or no permission to create a trigger),
  # `watch` logs why and returns false; `watch!` raises MemoryPressure::Unavailable.
  #
  # The thread waits in IO.select, without holding the GVL. MessagePack.compact!
  # visits the Ractor the watcher was started in (start one per Ractor if several
  # decode large data). Threads do not survive fork: start the watcher in each
  # worker (Puma's on_worker_boot, Sidekiq's startup event; see docs/memory.md).
  module MemoryPressure
    # Why a watcher could not start.
    class Unavailable < StandardError; end

    PROC_PSI = "/proc/pressure/memory"
    DEFAULT_THRESHOLD = 0.15 # seconds of stall ...
    DEFAULT_WINDOW = 2.0     # ... per this many seconds (systemd's default window)
    CURRENT_KEY = :__msgpack_rs_memory_pressure_watcher
    private_constant :CURRENT_KEY

    # Starts watching (replacing this Ractor's running watcher, if any). Returns the
    # Watcher, or false when memory-pressure events are unavailable or disabled.
    #
    # threshold:    stall time per window that triggers an event, in seconds
    #               (Float), or a whole trigger String such as "some 150000 2000000"
    # window:       the PSI window in seconds (0.5..10; unprivileged processes need a
    #               multiple of 2)
    # kind:         :some (a task stalled) or :full (all tasks stalled)
    # path:, write: listen on this file and write this trigger (see above)
    # logger:       a Logger (or anything with #info/#warn), an IO ($stderr by
    #               default), or nil to log nothing
    # compact:      run MessagePack.compact! on each event (default true)
    # min_interval: ignore events closer than this many seconds to the last handled
    #               one (default 0: PSI itself reports at most once per window)
    # on_event:     the block; called with the CompactReport (nil with compact: false)
    #               after compaction. Its exceptions are logged, not raised.
    def self.watch(**options, &on_event)
      watch!(**options, &on_event)
    rescue Unavailable => e
      Watcher.log(options.fetch(:logger, $stderr), :warn, "memory-pressure watcher not started: #{e.message}")
      false
    end

    # Like watch, but raises Unavailable instead of returning false.
    def self.watch!(**options, &on_event)
      stop
      watcher = Watcher.new(**options, &on_event)
      watcher.start
      Ractor.current[CURRENT_KEY] = watcher
      watcher
    end

    # Stops this Ractor's watcher (joins its thread). Returns true if one was running.
    def self.stop
      watcher = Ractor.current[CURRENT_KEY]
      Ractor.current[CURRENT_KEY] = nil
      return false unless watcher

      running = watcher.running?
      watcher.stop
      running
    end

    # This Ractor's watcher, if one is running.
    def self.current
      watcher = Ractor.current[CURRENT_KEY]
      watcher if watcher&.running?
    end

    def self.watching?
      !current.nil?
    end

    # Whether a PSI trigger can be created here (creates one and closes it).
    def self.available?
      Watcher.new(logger: nil).probe
      true
    rescue Unavailable
      false
    end

    # One watcher: a thread and the file descriptors it waits on.
    class Watcher
      attr_reader :path, :mode, :trigger, :events, :last_report, :last_event_at

      def initialize(threshold: DEFAULT_THRESHOLD, window: DEFAULT_WINDOW, kind: :some, path: nil, write: nil,
                     logger: $stderr, compact: true, min_interval: 0, &on_event)
        @logger = logger
        @compact = compact
        @min_interval = min_interval.to_f
        @on_event = on_event
        @events = 0
        @last_report = nil
        @last_event_at = nil
        @thread = nil
        @path, @trigger = resolve(path, write, threshold, window, kind)
      end

      def inspect
        trigger = @trigger ? " #{@trigger.delete("\0").inspect}" : ""
        "#<#{self.class.name} #{@mode || 'not started'} #{@path}#{trigger} events=#{@events}#{running? ? ' running' : ''}>"
      end

      def running?
        !@thread.nil? && @thread.alive?
      end

      # Opens the event source (writing the trigger) and starts the thread.
      def start
        raise ArgumentError, "watcher already started" if @thread

        @io, @mode = open_source
        @stop_r, @stop_w = IO.pipe
        @thread = Thread.new { run }
        @thread.name = "msgpack-memory-pressure" if @thread.respond_to?(:name=)
        @thread.report_on_exception = true
        Watcher.log(@logger, :info,
                    "watching memory pressure on #{@path} (#{@mode}#{@trigger ? ": #{@trigger.delete("\0")}" : ''})")
        self
      end

      # Ends the thread cleanly and closes the descriptors. Idempotent.
      def stop
        thread = @thread
        return self unless thread

        begin
          @stop_w.write_nonblock(".")
        rescue IOError, Errno::EPIPE, IO::WaitWritable
          # already closed, or the pipe is full: the thread is stopping anyway
        end
        thread.join unless thread == Thread.current
        [@io, @stop_r, @stop_w].each { |io| io.close unless io.nil? || io.closed? }
        self
      end

      # Opens and closes the event source: raises Unavailable when it cannot be used.
      def probe
        io, = open_source
        io.close
        true
      end

      # Runs what an event runs, now, on the calling thread (for tests and manual use).
      def handle_event(source = "manual")
        now = Process.clock_gettime(Process::CLOCK_MONOTONIC)
        return nil if @last_event_at && @min_interval.positive? && now - @last_event_at < @min_interval

        @last_event_at = now
        @events += 1
        report = @compact ? MessagePack.compact! : nil
        @last_report = report
        begin
          @on_event&.call(report)
        rescue StandardError => e
          Watcher.log(@logger, :warn, "memory-pressure callback raised #{e.class}: #{e.message}")
        end
        Watcher.log(@logger, :info, "memory pressure (#{source}): #{report || 'no compaction'}")
        report
      end

      def self.log(logger, level, message)
        return unless logger

        if logger.respond_to?(level)
          logger.public_send(level, "msgpack: #{message}")
        elsif logger.respond_to?(:puts)
          logger.puts("msgpack: #{message}")
        end
      rescue StandardError
        nil # logging must never break the watcher
      end

      private

      def resolve(path, write, threshold, window, kind)
        if path
          return [path.to_s, write]
        end

        env_path = ENV["MEMORY_PRESSURE_WATCH"]
        if env_path && !env_path.empty?
          raise Unavailable, "disabled ($MEMORY_PRESSURE_WATCH=/dev/null)" if env_path == "/dev/null"

          data = ENV["MEMORY_PRESSURE_WRITE"]
          trigger = data && !data.empty? ? data.unpack1("m") : nil
          return [env_path, trigger]
        end

        [default_psi_path, make_trigger(threshold, window, kind)]
      end

      def make_trigger(threshold, window, kind)
        return threshold if threshold.is_a?(String)

        kind = kind.to_s
        raise ArgumentError, "kind must be :some or :full, not #{kind.inspect}" unless %w[some full].include?(kind)

        window_us = (Float(window) * 1_000_000).round
        stall_us = (Float(threshold) * 1_000_000).round
        unless window_us.between?(500_000, 10_000_000)
          raise ArgumentError, "window must be between 0.5 and 10 seconds, not #{window}"
        end
        unless stall_us.positive? && stall_us <= window_us
          raise ArgumentError, "threshold must be positive and at most the window (#{window} s), not #{threshold}"
        end

        "#{kind} #{stall_us} #{window_us}"
      end

      # This cgroup's memory.pressure (cgroup v2), else the system-wide file.
      def default_psi_path
        mount = File.foreach("/proc/self/mounts").map(&:split).find { |fields| fields[2] == "cgroup2" }&.at(1)
        group = File.foreach("/proc/self/cgroup").find { |line| line.start_with?("0::") }&.chomp&.delete_prefix("0::")
        if mount && group && group != "/"
          candidate = File.join(mount, group, "memory.pressure")
          return candidate if File.exist?(candidate)
        end
        PROC_PSI
      rescue SystemCallError
        PROC_PSI
      end

      # [io, mode] with the trigger written; raises Unavailable.
      def open_source
        stat = File.stat(@path)
        if stat.pipe?
          # Read-write, so that no writer is not end-of-file (a read-only FIFO with
          # no writer polls readable forever).
          [File.open(@path, File::RDWR | File::NONBLOCK | File::BINARY), :fifo]
        elsif stat.socket?
          require "socket"
          sock = UNIXSocket.new(@path)
          sock.write(@trigger) if @trigger
          [sock, :socket]
        else
          io = File.open(@path, File::RDWR | File::NONBLOCK | File::BINARY)
          begin
            # The kernel overwrites the last byte written with a NUL: terminate it.
            io.syswrite(@trigger.end_with?("\0", "\n") ? @trigger : "#{@trigger}\0") if @trigger
          rescue SystemCallError => e
            io.close
            raise Unavailable, "cannot create a PSI trigger #{@trigger.inspect} on #{@path}: #{e.message}"
          end
          [io, :psi]
        end
      rescue Errno::ENOENT
        raise Unavailable, "#{@path} does not exist (kernel without PSI, or hidden in this container)"
      rescue Errno::EACCES, Errno::EPERM, Errno::EROFS => e
        raise Unavailable, "#{@path}: #{e.message}"
      rescue Errno::EOPNOTSUPP, Errno::EINVAL => e
        raise Unavailable, "#{@path} does not support PSI triggers: #{e.message}"
      end

      def run
        loop do
          readers = [@stop_r]
          readers << @io unless @mode == :psi
          ready = IO.select(readers, nil, @mode == :psi ? [@io] : nil)
          next unless ready

          break if ready[0].include?(@stop_r)

          case @mode
          when :psi
            if ready[0].include?(@io)
              # POLLERR/POLLIN on a PSI file: the trigger is gone (cgroup removed).
              Watcher.log(@logger, :warn, "memory-pressure trigger on #{@path} failed; watcher stopped")
              break
            end
            handle_event(@path) if ready[2].include?(@io)
          else
            data = read_event
            break if data.nil?

            handle_event(@path) unless data.empty?
          end
        end
      rescue IOError, SystemCallError => e
        Watcher.log(@logger, :warn, "memory-pressure watcher stopped: #{e.class}: #{e.message}")
      end

      # What a FIFO/socket delivered; "" if nothing (spurious wakeup), nil at EOF.
      def read_event
        @io.read_nonblock(4096)
      rescue IO::WaitReadable
        ""
      rescue EOFError
        Watcher.log(@logger, :warn, "memory-pressure source #{@path} closed; watcher stopped")
        nil
      end
    end
  end
end
