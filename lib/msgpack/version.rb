module MessagePack
  VERSION = "1.8.3"
  RS_VERSION = "0.1.0"
end
