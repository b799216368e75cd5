# HTTPS on the S3 listener (helper B, issue 4): certificate/key checks and a
# real server driven by libcurl and an OpenSSL client, with a CA the test
# makes in memory.
if(TARGET cairn_objstore)
  pkg_check_modules(S3TLS_LIBSSL REQUIRED IMPORTED_TARGET libssl)
  cairn_unit_test(test_s3_tls SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_s3_tls.c
                  LIBS cairn_objstore PkgConfig::CURL PkgConfig::SSL PkgConfig::S3TLS_LIBSSL
                  LABELS s3 TIMEOUT 120)
endif()
