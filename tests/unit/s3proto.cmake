# S3 protocol pieces (objstore/sigv4.c, s3_parse.c, s3_xml.c, s3_err.c): pure
# code, so the tests compile those files directly instead of linking
# cairn_objstore (which pulls the server, the chunk store and LMDB).
set(S3PROTO_SRC ${CMAKE_SOURCE_DIR}/objstore/sigv4.c ${CMAKE_SOURCE_DIR}/objstore/s3_parse.c
                ${CMAKE_SOURCE_DIR}/objstore/s3_xml.c ${CMAKE_SOURCE_DIR}/objstore/s3_err.c)
cairn_unit_test(test_sigv4 SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_sigv4.c ${S3PROTO_SRC}
                LIBS cairn_core PkgConfig::SSL PkgConfig::EXPAT LABELS quick TIMEOUT 30)
cairn_unit_test(test_s3_parse SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_s3_parse.c
                ${S3PROTO_SRC} LIBS cairn_core PkgConfig::SSL PkgConfig::EXPAT LABELS quick
                TIMEOUT 30)
cairn_unit_test(test_s3_xml SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_s3_xml.c ${S3PROTO_SRC}
                LIBS cairn_core PkgConfig::SSL PkgConfig::EXPAT LABELS quick TIMEOUT 30)
# Checksums and the aws-chunked decoder (issue 4): pure too.
set(S3CK_SRC ${CMAKE_SOURCE_DIR}/objstore/s3_cksum.c ${CMAKE_SOURCE_DIR}/objstore/s3_chunked.c)
cairn_unit_test(test_cksum SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_cksum.c ${S3CK_SRC}
                ${S3PROTO_SRC} LIBS cairn_core PkgConfig::SSL PkgConfig::EXPAT LABELS quick s3
                TIMEOUT 60)
cairn_unit_test(test_chunked SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_chunked.c ${S3CK_SRC}
                ${S3PROTO_SRC} LIBS cairn_core PkgConfig::SSL PkgConfig::EXPAT LABELS quick s3
                TIMEOUT 60)
