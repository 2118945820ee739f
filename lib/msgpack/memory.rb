# frozen_string_literal: true

# Memory: compact! reports, Factory#compact! (its pools and the scratch packer),
# and mapped-file input. See docs/memory.md.
#
# Native parts (ext/msgpack_rs/src/memory/, unpack/mapped/, factory/pools.rs): Buffer#compact!,
# Packer#compact!, Unpacker#compact!, MessagePack.compact!, MessagePack::MappedUnpacker.

module MessagePack
  # What a compact! gave back. Immutable; Integer-ish: #to_i / #to_int are
  # #bytes_released, and it compares with Integers and other reports by that.
  #
  #   report = MessagePack.compact!
  #   report.to_s  # => "compacted 38.2 MiB in 4.1 ms (12 objects; RSS 512.0 MiB -> 470.2 MiB)"
  #
  # bytes_before / bytes_after: memory held outside the Ruby heap by the objects visited
  # (buffers, decoder stacks, caches, and for mapped files their resident pages).
  # rss_before / rss_after: the process's resident set size around MessagePack.compact!
  # (nil for a single object's compact!). elapsed: seconds.
  class CompactReport
    include Comparable

    attr_reader :bytes_before, :bytes_after, :objects_visited, :elapsed, :rss_before, :rss_after

    # rubocop:disable Metrics/ParameterLists
    def initialize(bytes_before = 0, bytes_after = 0, objects_visited = 0, elapsed = 0.0,
                   rss_before = nil, rss_after = nil)
      @bytes_before = Integer(bytes_before)
      @bytes_after = Integer(bytes_after)
      @objects_visited = Integer(objects_visited)
      @elapsed = Float(elapsed)
      @rss_before = rss_before && Integer(rss_before)
      @rss_after = rss_after && Integer(rss_after)
      freeze
    end
    # rubocop:enable Metrics/ParameterLists

    def bytes_released
      released = @bytes_before - @bytes_after
      released.positive? ? released : 0
    end
    alias to_i bytes_released
    alias to_int bytes_released

    # How much the process's RSS dropped, when it was measured.
    def rss_released
      return nil unless @rss_before && @rss_after

      released = @rss_before - @rss_after
      released.positive? ? released : 0
    end

    def <=>(other)
      case other
      when CompactReport then bytes_released <=> other.bytes_released
      when Numeric then bytes_released <=> other
      end
    end

    def ==(other)
      case other
      when CompactReport then to_h == other.to_h
      when Numeric then bytes_released == other
      else false
      end
    end
    alias eql? ==

    def hash
      to_h.hash
    end

    # 1024 + report, etc.
    def coerce(other)
      [other, bytes_released]
    end

    # Two reports as one (bytes, objects and time added up; RSS from the first's
    # "before" to the second's "after").
    def +(other)
      CompactReport.new(
        @bytes_before + other.bytes_before, @bytes_after + other.bytes_after,
        @objects_visited + other.objects_visited, @elapsed + other.elapsed,
        @rss_before || other.rss_before, other.rss_after || @rss_after
      )
    end

    def to_h
      {
        bytes_before: @bytes_before, bytes_after: @bytes_after, bytes_released: bytes_released,
        objects_visited: @objects_visited, elapsed: @elapsed,
        rss_before: @rss_before, rss_after: @rss_after,
      }
    end

    def to_s
      parts = ["#{@objects_visited} #{@objects_visited == 1 ? 'object' : 'objects'}"]
      if @rss_before && @rss_after
        parts << "RSS #{CompactReport.format_bytes(@rss_before)} -> #{CompactReport.format_bytes(@rss_after)}"
      end
      format("compacted %<bytes>s in %<ms>.1f ms (%<details>s)",
             bytes: CompactReport.format_bytes(bytes_released), ms: @elapsed * 1000, details: parts.join("; "))
    end

    def inspect
      "#<#{self.class.name} #{self}: #{@bytes_before} -> #{@bytes_after} bytes>"
    end

    # 40_000_000 => "38.1 MiB"
    def self.format_bytes(bytes)
      return "#{bytes} B" if bytes < 1024

      units = %w[KiB MiB GiB TiB]
      value = bytes.to_f
      unit = nil
      units.each do |u|
        value /= 1024
        unit = u
        break if value < 1024
      end
      format("%.1f %s", value, unit)
    end

    EMPTY = new.freeze
  end

  class Factory
    # Releases the memory this factory's pools keep between uses (idle members'
    # buffers and caches) and the calling Ractor's scratch packer that every
    # factory's #dump / #pack reuses. Packers and unpackers handed out by #packer /
    # #unpacker belong to the caller: use their own compact!, or MessagePack.compact!.
    def compact!
      # Pool members are tagged natively with the factory they were asked
      # from (Memory.mark_pool_member), not tracked in a Ruby WeakMap: on Ruby
      # 3.1 WeakMaps add finalizers to a process-wide table without a lock,
      # which Ractors creating pools at once could corrupt.
      Memory.compact_scratch_packer(self) + Memory.compact_pool_members(self)
    end

    class Pool
      # Compacts the idle members (members in use are left alone).
      def compact!
        @packers.compact! + @unpackers.compact!
      end

      class MemberPool
        def compact!
          @idle.dup.map(&:compact!).reduce(CompactReport::EMPTY, :+)
        end
      end
    end

    # A MappedUnpacker over the file at `path` with this factory's ext types
    # (see MessagePack::Unpacker.open).
    def open_file(path, options = nil, **kwargs, &block)
      MappedUnpacker.__send__(:open_with, path, Memory.merge_options(options, kwargs), self, &block)
    end

    # Exactly one object from the file at `path` (see MessagePack.load_file).
    def load_file(path, options = nil, **kwargs)
      MappedUnpacker.__send__(:open_with, path, Memory.merge_options(options, kwargs), self, &:full_unpack)
    end
  end

  module Memory
    def self.merge_options(options, kwargs)
      return kwargs if options.nil?
      raise ArgumentError, "expected a Hash of options, got #{options.class}" unless options.is_a?(Hash)

      options.merge(kwargs)
    end
  end

  # Reads objects straight from a memory-mapped file: no read() copies, values copied
  # out of the mapping, consumed pages given back by #compact! (and by #each every
  # 2 MiB). Made by MessagePack::Unpacker.open, Factory#open_file,
  # MessagePack.load_file. See docs/memory.md for the limits (files that shrink).
  class MappedUnpacker
    include Enumerable

    def self.open_with(path, options, factory)
      unpacker = open_internal(path, options, factory)
      return unpacker unless block_given?

      begin
        yield unpacker
      ensure
        unpacker.close
      end
    end
    private_class_method :open_with, :open_internal

    def inspect
      "#<#{self.class.name} #{path} pos=#{pos}#{closed? ? ' (closed)' : ''}>"
    end
  end

  class Unpacker
    # Decodes the objects of a MessagePack file by mapping it into memory.
    #
    #   MessagePack::Unpacker.open("events.msgpack", symbolize_keys: true) do |u|
    #     u.each { |event| handle(event) }
    #   end
    #
    # Options are Unpacker.new's (symbolize_keys, freeze, allow_unknown_ext, the
    # max_* limits); like Unpacker.new, no ext types are registered (use
    # Factory#open_file for those). Without a block, returns the MappedUnpacker (close
    # it, or let the GC do it); with one, yields it, closes it and returns the block's
    # value. Raises Errno::ENOENT etc. like File.open, ArgumentError for directories,
    # FIFOs, sockets and devices.
    def self.open(path, options = nil, **kwargs, &block)
      MappedUnpacker.__send__(:open_with, path, Memory.merge_options(options, kwargs), nil, &block)
    end
  end

  # The single object in the file at `path`, decoded from a memory mapping with
  # DefaultFactory's ext types (MessagePack.load for files). EOFError for an empty or
  # truncated file, MalformedFormatError when bytes follow the object.
  def self.load_file(path, options = nil, **kwargs)
    DefaultFactory.load_file(path, options, **kwargs)
  end
end
