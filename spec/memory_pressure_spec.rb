# frozen_string_literal: true

# Memory: the memory-pressure watcher (MessagePack::MemoryPressure), driven through a FIFO
# (and a real PSI trigger where the kernel has one). msgpack-rs only (skipped in oracle
# runs). Shared constants and helpers: spec/support/memory.rb.

require "timeout"
require "stringio"
require "base64"

RSpec.describe "Memory", if: !MSGPACK_SPEC_ORACLE do
  include_context "memory spec files"

  describe "MessagePack::MemoryPressure" do
    after do
      MessagePack::MemoryPressure.stop
    end

    def fifo
      path = File.join(tmpdir, "pressure")
      File.mkfifo(path)
      path
    end

    def trigger(path)
      File.open(path, "w") { |f| f.write("event") }
    end

    it "runs MessagePack.compact! and the block on an event from a FIFO, and stop joins the thread" do
      log = StringIO.new
      events = Queue.new
      path = fifo
      watcher = MessagePack::MemoryPressure.watch(path: path, logger: log) { |report| events << report }
      expect(watcher).to be_a(MessagePack::MemoryPressure::Watcher)
      expect(watcher.mode).to eq(:fifo)
      expect(MessagePack::MemoryPressure).to be_watching

      packer = MessagePack::Packer.new
      packer.write(Array.new(256) { MemSpec::CHUNK })
      packer.full_pack
      trigger(path)
      report = Timeout.timeout(10) { events.pop }
      expect(report).to be_a(MessagePack::CompactReport)
      expect(report.bytes_released).to be >= 15 * MemSpec::MIB
      expect(watcher.events).to eq(1)
      expect(watcher.last_report).to equal(report)

      thread = watcher.instance_variable_get(:@thread)
      expect(MessagePack::MemoryPressure.stop).to be(true)
      expect(thread).not_to be_alive
      expect(watcher).not_to be_running
      expect(MessagePack::MemoryPressure).not_to be_watching
      expect(log.string).to include("watching memory pressure on #{path} (fifo)")
      expect(log.string).to match(/memory pressure \(.*\): compacted \d+\.\d MiB in/)
    end

    it "follows $MEMORY_PRESSURE_WATCH and logs through a Logger-like object" do
      messages = Queue.new
      logger = Object.new
      logger.define_singleton_method(:info) { |m| messages << m }
      logger.define_singleton_method(:warn) { |m| messages << m }
      path = fifo
      env = { "MEMORY_PRESSURE_WATCH" => path, "MEMORY_PRESSURE_WRITE" => Base64.strict_encode64("some 1 2\0") }
      old = env.keys.to_h { |k| [k, ENV[k]] }
      begin
        env.each { |k, v| ENV[k] = v }
        watcher = MessagePack::MemoryPressure.watch(logger: logger) { GC.start }
      ensure
        old.each { |k, v| ENV[k] = v }
      end
      expect(watcher.path).to eq(path)
      expect(watcher.trigger).to eq("some 1 2\0")
      trigger(path)
      Timeout.timeout(10) { messages.pop until watcher.events == 1 && messages.empty? && watcher.last_report }
      expect(watcher.last_report).to be_a(MessagePack::CompactReport)
      watcher.stop
      expect(watcher).not_to be_running
    end

    it "keeps running when the block raises" do
      log = StringIO.new
      path = fifo
      calls = Queue.new
      watcher = MessagePack::MemoryPressure.watch(path: path, logger: log) do
        calls << 1
        raise "boom"
      end
      trigger(path)
      Timeout.timeout(10) { calls.pop }
      Timeout.timeout(10) { sleep 0.01 until log.string.include?("memory pressure (") }
      expect(log.string).to include("callback raised RuntimeError: boom")
      expect(watcher).to be_running
      trigger(path)
      Timeout.timeout(10) { calls.pop }
    end

    it "returns false (watch) or raises (watch!) where it is unavailable or disabled" do
      log = StringIO.new
      expect(MessagePack::MemoryPressure.watch(path: File.join(tmpdir, "none"), logger: log)).to be(false)
      expect(log.string).to include("does not exist")
      expect { MessagePack::MemoryPressure.watch!(path: File.join(tmpdir, "none"), logger: nil) }
        .to raise_error(MessagePack::MemoryPressure::Unavailable, /does not exist/)
      old = ENV["MEMORY_PRESSURE_WATCH"]
      begin
        ENV["MEMORY_PRESSURE_WATCH"] = "/dev/null"
        expect(MessagePack::MemoryPressure.watch(logger: nil)).to be(false)
      ensure
        ENV["MEMORY_PRESSURE_WATCH"] = old
      end
      expect { MessagePack::MemoryPressure.watch(threshold: 5, window: 2, logger: nil) }
        .to raise_error(ArgumentError, /threshold/)
    end

    it "creates a real PSI trigger when the kernel has PSI" do
      skip "PSI is not available here" unless MessagePack::MemoryPressure.available?
      watcher = MessagePack::MemoryPressure.watch(logger: nil)
      expect(watcher.mode).to eq(:psi)
      expect(watcher.trigger).to eq("some 150000 2000000")
      expect(watcher).to be_running
      watcher.stop
      expect(watcher).not_to be_running
    end
  end
end
