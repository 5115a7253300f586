//go:build integration

package integration

import (
	"strings"
	"testing"

	"github.com/Masterminds/semver/v3"

	"github.com/runtimed/runtimed/pkg/api"
)

// languageCase is what every language is tested with: a hello world, a
// program that reads stdin, one that prints the version that runs, and,
// for compiled languages, one that does not compile.
type languageCase struct {
	language, file string
	hello          string // prints "hello, world"
	stdin          string // prints its stdin's first line upper-cased
	version        string // prints the language's version
	compileError   string // empty: the language does not compile
}

var languageCases = []languageCase{
	{language: "python", file: "main.py",
		hello:   `print("hello, world")`,
		stdin:   `print(input().upper())`,
		version: "import platform\nprint(platform.python_version())"},
	{language: "javascript", file: "main.js",
		hello:   `console.log("hello, world")`,
		stdin:   `console.log(require("fs").readFileSync(0, "utf8").split("\n")[0].toUpperCase())`,
		version: `console.log(process.versions.node)`},
	{language: "c", file: "main.c",
		hello:        "#include <stdio.h>\nint main(void){puts(\"hello, world\");return 0;}",
		stdin:        "#include <stdio.h>\n#include <ctype.h>\nint main(void){int c;while((c=getchar())!=EOF&&c!='\\n')putchar(toupper(c));putchar('\\n');}",
		version:      "#include <stdio.h>\nint main(void){printf(\"%d.%d.%d\\n\", __GNUC__, __GNUC_MINOR__, __GNUC_PATCHLEVEL__);}",
		compileError: "int main(void) { return undefined_name; }"},
	{language: "cpp", file: "main.cpp",
		hello:        "#include <iostream>\nint main(){std::cout << \"hello, world\" << std::endl;}",
		stdin:        "#include <iostream>\n#include <string>\n#include <cctype>\nint main(){std::string s;std::getline(std::cin,s);for(auto&c:s)c=std::toupper(c);std::cout<<s<<\"\\n\";}",
		version:      "#include <cstdio>\nint main(){std::printf(\"%d.%d.%d\\n\", __GNUC__, __GNUC_MINOR__, __GNUC_PATCHLEVEL__);}",
		compileError: "int main() { undefined_name(); }"},
	{language: "java", file: "Main.java",
		hello:        "public class Main { public static void main(String[] a) { System.out.println(\"hello, world\"); } }",
		stdin:        "import java.util.Scanner;\npublic class Main { public static void main(String[] a) { System.out.println(new Scanner(System.in).nextLine().toUpperCase()); } }",
		version:      "public class Main { public static void main(String[] a) { System.out.println(System.getProperty(\"java.specification.version\")); } }",
		compileError: "public class Main { public static void main(String[] a) { int x = \"s\"; } }"},
	{language: "bash", file: "main.sh",
		hello:   `echo "hello, world"`,
		stdin:   `read -r line; echo "${line^^}"`,
		version: `echo "${BASH_VERSINFO[0]}.${BASH_VERSINFO[1]}.${BASH_VERSINFO[2]}"`},
	{language: "go", file: "main.go",
		hello:        "package main\nimport \"fmt\"\nfunc main() { fmt.Println(\"hello, world\") }",
		stdin:        "package main\nimport (\"bufio\"; \"fmt\"; \"os\"; \"strings\")\nfunc main() { s := bufio.NewScanner(os.Stdin); s.Scan(); fmt.Println(strings.ToUpper(s.Text())) }",
		version:      "package main\nimport (\"fmt\"; \"runtime\"; \"strings\")\nfunc main() { fmt.Println(strings.TrimPrefix(runtime.Version(), \"go\")) }",
		compileError: "package main\nfunc main() { undefinedName() }"},
	{language: "rust", file: "main.rs",
		hello:        `fn main() { println!("hello, world"); }`,
		stdin:        "use std::io::BufRead;\nfn main() { let l = std::io::stdin().lock().lines().next().unwrap().unwrap(); println!(\"{}\", l.to_uppercase()); }",
		version:      "fn main() { let o = std::process::Command::new(\"/usr/bin/rustc\").arg(\"--version\").output().unwrap(); let s = String::from_utf8(o.stdout).unwrap(); println!(\"{}\", s.split_whitespace().nth(1).unwrap()); }",
		compileError: `fn main() { let x: i32 = "s"; }`},
	{language: "ruby", file: "main.rb",
		hello:   `puts "hello, world"`,
		stdin:   `puts STDIN.gets.chomp.upcase`,
		version: `puts RUBY_VERSION`},
	{language: "php", file: "main.php",
		hello:   `<?php echo "hello, world\n";`,
		stdin:   `<?php echo strtoupper(trim(fgets(STDIN))), "\n";`,
		version: `<?php echo PHP_VERSION, "\n";`},
	{language: "perl", file: "main.pl",
		hello:   `print "hello, world\n";`,
		stdin:   `my $l = <STDIN>; chomp $l; print uc($l), "\n";`,
		version: `printf "%vd\n", $^V;`},
	{language: "lua", file: "main.lua",
		hello:   `print("hello, world")`,
		stdin:   `print(io.read("l"):upper())`,
		version: `print((_VERSION:gsub("Lua ", "")))`},
	{language: "typescript", file: "main.ts",
		hello:        `const greeting: string = "hello, world"; console.log(greeting);`,
		stdin:        `const line: string = require("fs").readFileSync(0, "utf8").split("\n")[0]; console.log(line.toUpperCase());`,
		version:      `console.log(require("typescript").version);`,
		compileError: `const n: number = "not a number";`},
}

// TestLanguages runs every built-in language: hello world, stdin, the
// version it says it has, and a compile error where it compiles.
func TestLanguages(t *testing.T) {
	for _, c := range languageCases {
		t.Run(c.language, func(t *testing.T) {
			t.Run("hello", func(t *testing.T) {
				resp := runOK(t, &api.RunRequest{Language: c.language, Files: files(c.file, c.hello)})
				expectStatus(t, resp, api.StatusOK)
				if resp.Run.Stdout != "hello, world\n" {
					t.Fatalf("stdout %q stderr %q", resp.Run.Stdout, trim(resp.Run.Stderr))
				}
				if (c.compileError != "") != (resp.Compile != nil) {
					t.Fatalf("compile stage: %+v", resp.Compile)
				}
			})
			t.Run("stdin", func(t *testing.T) {
				resp := runOK(t, &api.RunRequest{Language: c.language, Files: files(c.file, c.stdin), Stdin: "quiet words\nsecond line\n"})
				expectStatus(t, resp, api.StatusOK)
				if resp.Run.Stdout != "QUIET WORDS\n" {
					t.Fatalf("stdout %q stderr %q", resp.Run.Stdout, trim(resp.Run.Stderr))
				}
			})
			t.Run("version", func(t *testing.T) {
				resp := runOK(t, &api.RunRequest{Language: c.language, Files: files(c.file, c.version)})
				expectStatus(t, resp, api.StatusOK)
				if got := strings.TrimSpace(resp.Run.Stdout); !sameVersion(resp.Version, got) {
					t.Fatalf("%s says version %q; its image runs %q", c.language, resp.Version, got)
				}
			})
			if c.compileError == "" {
				return
			}
			t.Run("compile error", func(t *testing.T) {
				resp := runOK(t, &api.RunRequest{Language: c.language, Files: files(c.file, c.compileError)})
				if resp.Status != api.StatusCompileError || resp.Compile == nil || resp.Run != nil {
					t.Fatalf("status %q compile %+v run %+v", resp.Status, resp.Compile, resp.Run)
				}
				if resp.Compile.ExitCode == 0 || resp.Compile.Stdout+resp.Compile.Stderr == "" {
					t.Fatalf("the compiler said nothing: %+v", resp.Compile)
				}
			})
		})
	}
}

// sameVersion reports whether the version a language reports and the one
// its image runs agree: equal, or one a range the other is in ("8.2"
// holds 8.2.36; "17" holds 17).
func sameVersion(reported, running string) bool {
	if reported == running {
		return true
	}
	within := func(rng, v string) bool {
		c, err := semver.NewConstraint(rng)
		if err != nil {
			return false
		}
		sv, err := semver.NewVersion(v)
		return err == nil && c.Check(sv)
	}
	return within(reported, running) || within(running, reported)
}
