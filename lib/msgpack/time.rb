# frozen_string_literal: true

module MessagePack
  # Ext packer and unpacker for ::Time in the timestamp format:
  #
  #   factory.register_type(MessagePack::Timestamp::TYPE, ::Time,
  #                         packer: MessagePack::Time::Packer, unpacker: MessagePack::Time::Unpacker)
  #
  # Both lambdas are Ractor-shareable (their self is this module and they capture
  # nothing), so a factory holding them can be used from any Ractor.
  module Time
    # Time.at(sec, nsec, :nanosecond) exists since Ruby 2.5.
    TIME_AT_3_AVAILABLE = begin
      ::Time.at(0, 0, :nanosecond)
      true
    rescue ArgumentError
      false
    end

    # time -> payload String
    Packer = lambda { |time| Timestamp.to_msgpack_ext(time.tv_sec, time.tv_nsec) }

    # payload String -> ::Time, in local time
    Unpacker = lambda do |payload|
      timestamp = Timestamp.from_msgpack_ext(payload)
      ::Time.at(timestamp.sec, timestamp.nsec, :nanosecond)
    end

    Ractor.make_shareable(Packer)
    Ractor.make_shareable(Unpacker)
  end
end
